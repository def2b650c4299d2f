package proxy

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// echo is what the echo backend reports about the request it got.
type echo struct {
	Name       string
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	BodySHA    string
	BodyLen    int64
}

func echoBackend(t *testing.T, name string) string {
	t.Helper()
	s := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{
			Name: name, Method: r.Method, RequestURI: r.RequestURI, Host: r.Host,
			Header: r.Header, BodySHA: hex.EncodeToString(h.Sum(nil)), BodyLen: n,
		})
	})
	return addr(s)
}

func decodeEcho(t *testing.T, body string) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return e
}

func TestForwardRoundRobinOverThree(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil,
		setOf(t, "user", echoBackend(t, "a"), echoBackend(t, "b"), echoBackend(t, "c")))
	got := make(map[string]int)
	for i := range 9 {
		resp, body := f.get(fmt.Sprintf("/api/user/%d", i))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		got[decodeEcho(t, body).Name]++
	}
	if got["a"] != 3 || got["b"] != 3 || got["c"] != 3 {
		t.Fatalf("got %v, want 3 each", got)
	}
}

func TestForwardPathQueryAndStripPrefix(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{
		{Name: "users", PathPrefix: "/api/user", Service: "user", StripPrefix: true},
		{Name: "keep", PathPrefix: "/keep", Service: "user"},
	}, nil, setOf(t, "user", echoBackend(t, "a")))
	tests := []struct{ path, want string }{
		{"/api/user/42?x=1&y=%2F", "/42?x=1&y=%2F"},
		{"/api/user", "/"},
		{"/api/user/", "/"},
		{"/api/user/a/b/", "/a/b/"},
		{"/keep/%7Ea/b%3f?q", "/keep/~a/b%3F?q"},
		{"/keep/x/../y//z", "/keep/y/z"},
		{"/keep/caf%c3%a9", "/keep/caf%C3%A9"},
	}
	for _, tt := range tests {
		resp, body := rawGet(t, f, tt.path, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: got %d %q", tt.path, resp.StatusCode, body)
		}
		if got := decodeEcho(t, body).RequestURI; got != tt.want {
			t.Errorf("%s: upstream got %q, want %q", tt.path, got, tt.want)
		}
	}
}

// rawGet sends a request line exactly as given (no client-side cleaning).
func rawGet(t *testing.T, f *fixture, target, extraHeaders string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: example.com\r\n%sConnection: close\r\n\r\n", target, extraHeaders)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestForwardHeaders(t *testing.T) {
	f := newFixture(t, "text")
	var got *http.Request
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(r.Context())
		w.Header().Set("Connection", "X-Resp-Secret")
		w.Header().Set("X-Resp-Secret", "s")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "yes")
		io.WriteString(w, "ok")
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))

	req, _ := http.NewRequest(http.MethodGet, f.front.URL+"/h", nil)
	req.Host = "Shop.Example.com:8443"
	req.Header.Set("Connection", "X-Secret, keep-alive")
	req.Header.Set("X-Secret", "s")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	req.Header.Add("X-Forwarded-For", "203.0.113.7")
	req.Header.Add("X-Forwarded-For", "198.51.100.1")
	req.Header.Set("X-Forwarded-Proto", "https") // spoofed: replaced
	req.Header.Set("X-Forwarded-Host", "evil")   // spoofed: replaced
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("X-Real-IP", "203.0.113.9")     // spoofed: removed
	req.Header.Set("Forwarded", "for=203.0.113.9") // spoofed: removed
	resp, body := f.do(req)
	if resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}

	for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("upstream got hop-by-hop %s: %q", h, v)
		}
	}
	if v := got.Header.Get("X-Custom"); v != "kept" {
		t.Errorf("X-Custom: got %q, want kept", v)
	}
	if got.Host != "Shop.Example.com:8443" {
		t.Errorf("Host: got %q, want the client's", got.Host)
	}
	if v := got.Header.Get("X-Forwarded-For"); v != "127.0.0.1" {
		t.Errorf("X-Forwarded-For: got %q, want the untrusted client's list replaced by 127.0.0.1", v)
	}
	for _, h := range []string{"X-Real-Ip", "Forwarded"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("upstream got the untrusted client's %s: %q", h, v)
		}
	}
	if v := got.Header.Get("X-Forwarded-Host"); v != "Shop.Example.com:8443" {
		t.Errorf("X-Forwarded-Host: got %q", v)
	}
	if v := got.Header.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto: got %q, want http", v)
	}

	for _, h := range []string{"X-Resp-Secret", "Keep-Alive"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("client got hop-by-hop %s: %q", h, v)
		}
	}
	if v := resp.Header.Get("X-Kept"); v != "yes" {
		t.Errorf("X-Kept: got %q, want yes", v)
	}
}

func TestForwardLargeUpload(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", echoBackend(t, "a")))
	data := make([]byte, 5<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)

	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(string(data))
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/upload", body)
		resp, out := f.do(req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("chunked=%v: got %d %q", chunked, resp.StatusCode, out)
		}
		e := decodeEcho(t, out)
		if e.BodyLen != int64(len(data)) || e.BodySHA != hex.EncodeToString(sum[:]) {
			t.Fatalf("chunked=%v: upstream got %d bytes (sha %s), want %d (sha %x)", chunked, e.BodyLen, e.BodySHA, len(data), sum)
		}
	}
}

func TestForwardStreamedDownload(t *testing.T) {
	f := newFixture(t, "text")
	const chunk, chunks = 64 << 10, 256 // 16 MiB
	firstSeen := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, chunk)
		for i := range chunks {
			for j := range buf {
				buf[j] = byte(i + j)
			}
			w.Write(buf)
			if i == 0 {
				// The rest only once the client has the first chunk: a
				// proxy that buffers the whole body would deadlock here.
				w.(http.Flusher).Flush()
				select {
				case <-firstSeen:
				case <-time.After(10 * time.Second):
					return
				}
			}
		}
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))

	resp, err := f.front.Client().Get(f.front.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, chunk)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	close(firstSeen)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(first) + len(rest); got != chunk*chunks {
		t.Fatalf("got %d bytes, want %d", got, chunk*chunks)
	}
	all := append(first, rest...)
	for i := range chunks {
		if all[i*chunk+5] != byte(i+5) {
			t.Fatalf("chunk %d corrupted", i)
		}
	}
}

func TestForwardServerSentEvents(t *testing.T) {
	f := newFixture(t, "text")
	next := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
				return
			}
		}
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))

	resp, err := f.front.Client().Get(f.front.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		// Each event arrives while the backend still holds the stream open.
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if want := fmt.Sprintf("data: event %d\n", i); line != want {
			t.Fatalf("got %q, want %q", line, want)
		}
		br.ReadString('\n') // the blank line ending the event
		next <- struct{}{}
	}
}

func TestForwardUpgradeTunnelled(t *testing.T) {
	f := newFixture(t, "text")
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade expected", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo: " + line)
			brw.Flush()
		}
	})
	f.route([]route.RouteSpec{{Name: "ws", PathPrefix: "/ws", Service: "s"}}, nil, setOf(t, "s", addr(be)))

	c, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws/chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("got %d %v, want 101 websocket", resp.StatusCode, resp.Header)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		io.WriteString(c, msg)
		got, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if got != "echo: "+msg {
			t.Fatalf("got %q, want %q", got, "echo: "+msg)
		}
	}
	c.Close()
	waitFor(t, "the access log line of the upgraded request", func() bool { return len(f.access.Lines()) == 1 })
	if line := f.access.Lines()[0]; !strings.Contains(line, `"GET /ws/chat HTTP/1.1" 101 `) {
		t.Errorf("access log: got %q, want status 101", line)
	}
}

func TestForwardTrailers(t *testing.T) {
	f := newFixture(t, "text")
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc123")
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))
	resp, body := f.get("/t")
	if body != "body" {
		t.Fatalf("body: got %q", body)
	}
	if v := resp.Trailer.Get("X-Checksum"); v != "abc123" {
		t.Fatalf("trailer X-Checksum: got %q, want abc123 (trailers %v)", v, resp.Trailer)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForwardHeadersTrustedProxy(t *testing.T) {
	f := newFixture(t, "text")
	var got *http.Request
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { got = r.Clone(r.Context()) })
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))
	f.handler.SetEdge(core.Edge{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})

	req, _ := http.NewRequest(http.MethodGet, f.front.URL+"/h", nil)
	req.Header.Add("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "shop.example")
	req.Header.Set("X-Real-IP", "203.0.113.7")
	req.Header.Set("Forwarded", "for=203.0.113.7;proto=https")
	// A client cannot make ferry drop its own headers by nominating them.
	req.Header.Set("Connection", "X-Forwarded-For, X-Forwarded-Proto")
	if resp, _ := f.do(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d", resp.StatusCode)
	}
	want := map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 127.0.0.1",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "shop.example",
		"X-Real-Ip":         "203.0.113.7",
		"Forwarded":         "for=203.0.113.7;proto=https",
	}
	for h, w := range want {
		if v := got.Header.Get(h); v != w {
			t.Errorf("%s: got %q, want %q", h, v, w)
		}
	}
}

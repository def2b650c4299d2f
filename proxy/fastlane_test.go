package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// echoed is what jsonEchoBackend reports of the request it got.
type echoed struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       string
}

// jsonEchoBackend answers every request with a JSON description of it.
func jsonEchoBackend(t *testing.T) string {
	return addr(backend(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		h.Del("Accept-Encoding")
		// A request ID ferry made is random: compare its shape only.
		if id := h.Get("X-Request-Id"); len(id) == 32 && strings.Trim(id, "0123456789abcdef") == "" {
			h.Set("X-Request-Id", "(new)")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("X-Multi", "1")
		w.Header().Add("X-Multi", "2")
		json.NewEncoder(w).Encode(echoed{r.Method, r.RequestURI, r.Host, h, string(b)})
	}))
}

// rawExchange sends raw on a new connection to address and reads one
// response.
func rawExchange(t *testing.T, address, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	method := raw[:strings.IndexByte(raw, ' ')]
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: reading body: %v", raw, err)
	}
	return resp, string(b)
}

// TestLaneParity sends the same requests through the fast lane and through
// the Handler, and checks that the upstream and the client see the same.
func TestLaneParity(t *testing.T) {
	if handlerLane {
		t.Skip("compares both lanes itself")
	}
	f := newFixture(t, "text")
	handlerLane = true // for the second frontend only
	slowHandler := newFrontend(t, f.handler)
	handlerLane = false
	t.Cleanup(slowHandler.Close)

	be := jsonEchoBackend(t)
	f.route([]route.RouteSpec{
		{Name: "users", PathPrefix: "/api/user", Service: "user"},
		{Name: "strip", PathPrefix: "/strip", Service: "user", StripPrefix: true},
	}, nil, setOf(t, "user", be))

	requests := []string{
		"GET /api/user/42?x=1&y=%20 HTTP/1.1\r\nHost: ferry.local\r\nX-Test: a\r\nx-test: b\r\nUser-Agent: parity\r\n\r\n",
		"GET /strip/a/b?q HTTP/1.1\r\nHost: ferry.local:8080\r\n\r\n",
		"GET /strip HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/user/../user/./7 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/user/%7euser/%41/%2a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/user//a///b HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/user/$&+,;=:@ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/user/q?a=(1)*!'&b=/? HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/user/x? HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/user/f HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 1.1.1.1\r\nForwarded: for=1.1.1.1\r\n\r\n",
		"GET /api/user/h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\nProxy-Authorization: Basic eA==\r\n\r\n",
		"POST /api/user/p HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
		"PUT /api/user/p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"HEAD /api/user/h HTTP/1.1\r\nHost: x\r\n\r\n",
		"DELETE /api/user/d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"OPTIONS /api/user/o HTTP/1.1\r\nHost: x\r\n\r\n",
		"PATCH /api/user/o HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"GET /api/user/v HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xc3\xa9\r\nX-Empty:\r\nX-Tabs: \ta\tb \r\n\r\n",
	}
	before := f.handler.Stats().Handoffs()
	for _, raw := range requests {
		fastResp, fastBody := rawExchange(t, f.front.Listener.Addr().String(), raw)
		slowResp, slowBody := rawExchange(t, slowHandler.Listener.Addr().String(), raw)
		if fastResp.StatusCode != slowResp.StatusCode {
			t.Errorf("%q: status fast %d, handler %d", raw, fastResp.StatusCode, slowResp.StatusCode)
		}
		if fastBody != slowBody {
			t.Errorf("%q: upstream saw\nfast:    %s\nhandler: %s", raw, fastBody, slowBody)
		}
		if !reflect.DeepEqual(headerNames(fastResp.Header), headerNames(slowResp.Header)) ||
			!reflect.DeepEqual(fastResp.Header["X-Multi"], slowResp.Header["X-Multi"]) {
			t.Errorf("%q: response headers\nfast:    %v\nhandler: %v", raw, fastResp.Header, slowResp.Header)
		}
	}
	// One handoff per request went through slowHandler; none through the
	// fast lane.
	if got := f.handler.Stats().Handoffs() - before; got != uint64(len(requests)) {
		t.Errorf("handoffs: got %d, want %d (the fast lane served none of them)", got, len(requests))
	}
}

func headerNames(h http.Header) []string {
	var names []string
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestLaneSelection checks which requests the fast lane serves and which it
// hands to the Handler.
func TestLaneSelection(t *testing.T) {
	if handlerLane {
		t.Skip("about the fast lane")
	}
	f := newFixture(t, "text")
	be := jsonEchoBackend(t)
	f.route([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil, setOf(t, "user", be))
	long := strings.Repeat("a", fastBufSize)
	many := strings.Repeat("X-A: 1\r\n", 101)
	tests := []struct {
		name    string
		raw     string
		handoff bool
	}{
		{"get", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"post", "POST /api/user/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", false},
		{"http/1.0", "GET /api/user/1 HTTP/1.0\r\nHost: x\r\n\r\n", true},
		{"chunked upload", "POST /api/user/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", true},
		{"expect", "POST /api/user/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi", true},
		{"upgrade", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", true},
		{"te", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n", true},
		{"connection nominates", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\nConnection: X-Foo\r\nX-Foo: 1\r\n\r\n", true},
		{"trace", "TRACE /api/user/1 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		// ferry's own answers before forwarding stay in the fast lane.
		{"no route", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"bad path", "GET /api/user/a%2fb HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"path needing escapes", "GET /api/user/(a) HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"semicolon in query", "GET /api/user/1?a=1;b=2 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"absolute form", "GET http://x/api/user/1 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"no host", "GET /api/user/1 HTTP/1.1\r\n\r\n", true},
		{"two hosts", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", true},
		{"underscore", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\nX_A: 1\r\n\r\n", true},
		{"obs-fold", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", true},
		{"bare LF", "GET /api/user/1 HTTP/1.1\nHost: x\n\n", true},
		{"duplicate length", "POST /api/user/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", true},
		{"too many fields", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\n" + many + "\r\n", true},
		{"head beyond the buffer", "GET /api/user/1 HTTP/1.1\r\nHost: x\r\nX-Long: " + long + "\r\n\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.handler.Stats().Handoffs()
			resp, _ := rawExchange(t, f.front.Listener.Addr().String(), tt.raw)
			got := f.handler.Stats().Handoffs() - before
			if want := map[bool]uint64{false: 0, true: 1}[tt.handoff]; got != want {
				t.Fatalf("handoffs: got %d, want %d (status %d)", got, want, resp.StatusCode)
			}
		})
	}
}

// rawBackend answers each request on its connections with the response
// respond returns for the request's path, then closes the connection when
// close says so. It reads request heads only (the tests send no bodies).
func rawBackend(t *testing.T, respond func(path string) (resp string, close bool)) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					resp, closing := respond(req.URL.Path)
					if _, err := io.WriteString(c, resp); err != nil || closing {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String(), accepted
}

func TestUpstreamFramings(t *testing.T) {
	f := newFixture(t, "text")
	bigValue := strings.Repeat("v", 20<<10)  // a head beyond the small input buffer
	bigChunk := strings.Repeat("c", 100<<10) // 0x19000 bytes: beyond the large one too
	responses := map[string]struct {
		resp  string
		close bool
	}{
		"/chunked":    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n", false},
		"/close":      {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true},
		"/http10":     {"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!", true},
		"/nocontent":  {"HTTP/1.1 204 No Content\r\n\r\n", false},
		"/notmod":     {"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", false},
		"/hints":      {"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		"/both":       {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		"/nominates":  {"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nContent-Length: 2\r\n\r\nok", true},
		"/two-len":    {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", true},
		"/gzip-te":    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", true},
		"/bad-status": {"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", true},
		"/reason":     {"HTTP/1.1 418 Short And Stout\r\nContent-Length: 3\r\n\r\ntea", false},
		"/big-head":   {"HTTP/1.1 200 OK\r\nX-Big: " + bigValue + "\r\nContent-Length: 2\r\n\r\nok", false},
		"/big-chunk":  {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n19000\r\n" + bigChunk + "\r\n0\r\n\r\n", false},
		"/big-length": {"HTTP/1.1 200 OK\r\nContent-Length: 102400\r\n\r\n" + bigChunk, false},
	}
	be, _ := rawBackend(t, func(path string) (string, bool) {
		r := responses[path]
		return r.resp, r.close
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, map[string]route.ServiceSpec{"s": {Retries: 0}}, setOf(t, "s", be))
	tests := []struct {
		path, body string
		status     int
		check      func(t *testing.T, resp *http.Response)
	}{
		{"/chunked", "hello world", 200, func(t *testing.T, resp *http.Response) {
			if got := resp.Trailer.Get("X-Sum"); got != "42" {
				t.Errorf("trailer X-Sum: got %q, want 42", got)
			}
		}},
		{"/close", "until the end", 200, nil},
		{"/http10", "old!", 200, nil},
		{"/nocontent", "", 204, nil},
		{"/notmod", "", 304, func(t *testing.T, resp *http.Response) {
			if resp.Header.Get("Etag") != `"x"` {
				t.Errorf("ETag lost: %v", resp.Header)
			}
		}},
		{"/hints", "ok", 200, nil},
		{"/both", "ok", 200, nil},
		{"/nominates", "ok", 200, func(t *testing.T, resp *http.Response) {
			if resp.Header.Get("X-Secret") != "" {
				t.Errorf("X-Secret, nominated by Connection, reached the client: %v", resp.Header)
			}
		}},
		{"/two-len", "ferry: upstream of service \"s\" failed\n", 502, nil},
		{"/gzip-te", "ferry: upstream of service \"s\" failed\n", 502, nil},
		{"/bad-status", "ferry: upstream of service \"s\" failed\n", 502, nil},
		{"/reason", "tea", 418, nil},
		{"/big-head", "ok", 200, func(t *testing.T, resp *http.Response) {
			if len(resp.Header.Get("X-Big")) != len(bigValue) {
				t.Errorf("X-Big: got %d bytes, want %d", len(resp.Header.Get("X-Big")), len(bigValue))
			}
		}},
		{"/big-chunk", bigChunk, 200, nil},
		{"/big-length", bigChunk, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			// Twice over one client connection: each response must leave it
			// usable.
			for i := 0; i < 2; i++ {
				resp, body := f.get(tt.path)
				if resp.StatusCode != tt.status || body != tt.body {
					t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
				}
				if tt.check != nil {
					tt.check(t, resp)
				}
			}
		})
	}
}

// TestStaleUpstreamConnectionRetried: an upstream that closes each
// connection after answering, without saying so, makes every pooled
// connection stale; requests must not fail for it.
func TestStaleUpstreamConnectionRetried(t *testing.T) {
	f := newFixture(t, "text")
	be, accepted := rawBackend(t, func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, map[string]route.ServiceSpec{"s": {Retries: 0}}, setOf(t, "s", be))
	for i := 0; i < 5; i++ {
		method := http.MethodGet
		var body io.Reader
		if i%2 == 1 {
			method, body = http.MethodPost, strings.NewReader("payload")
		}
		req, _ := http.NewRequest(method, f.front.URL+"/x", body)
		resp, got := f.do(req)
		if resp.StatusCode != 200 || got != "ok" {
			t.Fatalf("request %d (%s): got %d %q", i, method, resp.StatusCode, got)
		}
		time.Sleep(20 * time.Millisecond) // let the close reach ferry's side
	}
	if n := accepted.Load(); n != 5 {
		t.Errorf("upstream connections: got %d, want 5 (one per request)", n)
	}
}

// readEcho reads one response of jsonEchoBackend's from br.
func readEcho(t *testing.T, br *bufio.Reader, what string) echoed {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer resp.Body.Close()
	var e echoed
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%s: decoding the echo: %v", what, err)
	}
	io.Copy(io.Discard, resp.Body)
	return e
}

func TestPipelinedRequests(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", jsonEchoBackend(t)))
	c := f.dial()
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/one", "/two", "/three"} {
		e := readEcho(t, br, want)
		if e.RequestURI != want {
			t.Fatalf("got the answer for %q, want %q", e.RequestURI, want)
		}
	}
}

// TestHandoffMidConnection: a connection the fast lane served keeps working
// once a request hands it to the Handler.
func TestHandoffMidConnection(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", jsonEchoBackend(t)))
	c := f.dial()
	br := bufio.NewReader(c)
	steps := []struct{ raw, uri, body string }{
		{"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "/a", ""},
		{"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "/b", "abc"},
		{"GET /c HTTP/1.1\r\nHost: x\r\n\r\n", "/c", ""},
	}
	for _, s := range steps {
		io.WriteString(c, s.raw)
		e := readEcho(t, br, s.uri)
		if e.RequestURI != s.uri || e.Body != s.body {
			t.Fatalf("got %q %q, want %q %q", e.RequestURI, e.Body, s.uri, s.body)
		}
	}
}

// TestServerShutdownDrains: Shutdown lets a request in flight finish (and
// closes its connection after it), closes idle connections, and returns.
func TestServerShutdownDrains(t *testing.T) {
	f := newFixture(t, "text")
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))

	idle, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
	idleBr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBr, nil); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	type result struct {
		resp *http.Response
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := f.front.Client().Get(f.front.URL + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp: resp, body: string(b)}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- f.front.server.Shutdown(context.Background()) }()

	// The idle connection is closed.
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idleBr.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: got %v, want EOF", err)
	}
	close(release)
	r := <-got
	if r.err != nil || r.body != "done" || !r.resp.Close {
		t.Fatalf("in-flight request: %v %q (Connection: close = %v)", r.err, r.body, r.resp != nil && r.resp.Close)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestStreamedBodyReusesPooledConnection: a body that arrives after its head
// goes over a pooled connection once the connection is checked, even when
// its last read deadline has long passed.
func TestStreamedBodyReusesPooledConnection(t *testing.T) {
	f := newFixture(t, "text")
	be, accepted := rawBackend(t, func(string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", be))
	if resp, body := f.get("/first"); resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	time.Sleep(core.ClientCheckInterval + 200*time.Millisecond) // the pooled connection's deadline passes

	c := f.dial()
	io.WriteString(c, "POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // the body comes later: streamed, not replayable
	io.WriteString(c, "0123456789")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("second: %d %q", resp.StatusCode, b)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("upstream connections: got %d, want 1 (the pooled one reused)", n)
	}
}

// TestNoRetryAfterInformational: once a 1xx head reached the client, a
// failure is answered, not retried (response bytes were sent).
func TestNoRetryAfterInformational(t *testing.T) {
	f := newFixture(t, "text")
	var hits atomic.Int32
	hint := func(string) (string, bool) {
		hits.Add(1)
		return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", true // then closes
	}
	a, _ := rawBackend(t, hint)
	b, _ := rawBackend(t, hint)
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, map[string]route.ServiceSpec{"s": {Retries: 2}}, setOf(t, "s", a, b))
	if resp, _ := f.get("/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d, want 502", resp.StatusCode)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("attempts: got %d, want 1", n)
	}
}

// TestUpstreamBreaksDuringUpload: an upstream that goes away while a body
// is streamed to it gets the client a 502 and a closed connection (the rest
// of the body must never be read as another request).
func TestUpstreamBreaksDuringUpload(t *testing.T) {
	f := newFixture(t, "text")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			c.Read(buf) // the head and a little body, then away
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, map[string]route.ServiceSpec{"s": {Retries: 0}},
		setOf(t, "s", ln.Addr().String()))

	c := f.dial()
	const size = 8 << 20
	io.WriteString(c, fmt.Sprintf("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size))
	go func() { // the body, as fast as ferry takes it; errors once it closes
		chunk := []byte(strings.Repeat("GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 1000))
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("got %d, want 502", resp.StatusCode)
	}
	if !resp.Close {
		t.Errorf("the answer does not close the connection")
	}
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("a second response (%d) came on the connection: body bytes were read as a request", resp.StatusCode)
	}
}

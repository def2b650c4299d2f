package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
)

func TestErrorAnswers(t *testing.T) {
	f := newFixture(t, "text")
	hang := make(chan struct{})
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a closed connection only once the body is read
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(hang) }) // runs before the backend's Close
	f.route([]route.RouteSpec{
		{Name: "users", PathPrefix: "/api/user", Service: "user"},
		{Name: "gone", PathPrefix: "/gone", Service: "gone"},
		{Name: "slow", PathPrefix: "/slow", Service: "slow"},
	}, map[string]route.ServiceSpec{
		"slow": {ResponseTimeout: 200 * time.Millisecond, Retries: 2},
	},
		setOf(t, "user"), // known, but no instance
		setOf(t, "gone", deadAddr(t)),
		setOf(t, "slow", addr(slow)),
	)

	tests := []struct {
		name, method, path string
		status             int
		body               string
		header, value      string
	}{
		{name: "no route", method: "GET", path: "/nope/x", status: 404, body: "ferry: no route for /nope/x\n"},
		{name: "no instance", method: "GET", path: "/api/user/1", status: 503,
			body: "ferry: no healthy instance of service \"user\"\n", header: "Retry-After", value: "1"},
		{name: "refused", method: "GET", path: "/gone", status: 502, body: "ferry: upstream of service \"gone\" failed\n"},
		// The refused connection ejected the only instance at once.
		{name: "refused instance ejected", method: "POST", path: "/gone", status: 503,
			body: "ferry: no healthy instance of service \"gone\"\n", header: "Retry-After", value: "1"},
		{name: "no response headers in time", method: "GET", path: "/slow", status: 504,
			body: "ferry: upstream of service \"slow\" timed out\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, f.front.URL+tt.path, strings.NewReader("x"))
			start := time.Now()
			resp, body := f.do(req)
			if resp.StatusCode != tt.status || body != tt.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type: got %q", ct)
			}
			if tt.header != "" && resp.Header.Get(tt.header) != tt.value {
				t.Errorf("%s: got %q, want %q", tt.header, resp.Header.Get(tt.header), tt.value)
			}
			if tt.status == 504 && time.Since(start) > 2*time.Second {
				t.Errorf("504 took %v: a timed-out request must not be retried", time.Since(start))
			}
		})
	}
}

func TestErrorConnectAndBadPath(t *testing.T) {
	f := newFixture(t, "text")
	var hits atomic.Int32
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	f.route([]route.RouteSpec{{Name: "all", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))

	tests := []struct {
		name, request string
		status        int
		body          string
	}{
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, "ferry: method CONNECT not allowed\n"},
		{"encoded slash", "GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "ferry: bad request path: encoded \"/\" or \"\\\"\n"},
		// net/url escapes a raw backslash, so it arrives as %5C.
		{"backslash", "GET /a\\b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "ferry: bad request path: encoded \"/\" or \"\\\"\n"},
		{"encoded NUL", "GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "ferry: bad request path: control character\n"},
		{"unprintable upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: w\xffs\r\n\r\n", 400, "ferry: bad request\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", f.front.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tt.request)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || string(b) != tt.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tt.status, tt.body)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("backend got %d requests, want none", n)
	}
	if resp, _ := rawGet(t, f, "/ok", ""); resp.StatusCode != 200 || hits.Load() != 1 {
		t.Fatalf("control request: got %d, %d hits", resp.StatusCode, hits.Load())
	}
}

func TestRetryConnectFailureWithBody(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil,
		setOf(t, "s", deadAddr(t), echoBackend(t, "live"), deadAddr(t)))
	payload := strings.Repeat("payload-", 8<<10)
	for i := range 6 { // every rotation position, twice
		req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/orders", strings.NewReader(payload))
		resp, body := f.do(req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: got %d %q", i, resp.StatusCode, body)
		}
		if e := decodeEcho(t, body); e.BodyLen != int64(len(payload)) || e.Method != "POST" {
			t.Fatalf("request %d: upstream got %s with %d bytes, want POST with %d", i, e.Method, e.BodyLen, len(payload))
		}
	}
	// Retries happened (one attempt per dead instance met on the way).
	retried := 0
	for _, l := range f.accessLines(6) {
		if !strings.HasSuffix(l, "attempts=1") {
			retried++
		}
	}
	if retried == 0 {
		t.Fatalf("no request needed a retry: %q", f.access.Lines())
	}
}

// brokenBackend reads the whole request, then drops the connection without
// answering: the upstream got the request, so only a bodiless idempotent
// request may be retried.
func brokenBackend(t *testing.T, hits *atomic.Int32) string {
	s := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	return addr(s)
}

func TestNoRetryAfterUpstreamGotRequest(t *testing.T) {
	f := newFixture(t, "text")
	var broken, good atomic.Int32
	goodAddr := addr(backend(t, func(w http.ResponseWriter, r *http.Request) {
		good.Add(1)
		io.WriteString(w, "fine")
	}))
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"s": {Retries: 2, Balance: "round_robin"}},
		setOf(t, "s", brokenBackend(t, &broken), goodAddr))

	// Round robin starts at the broken instance.
	req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/pay", strings.NewReader("amount=10"))
	resp, body := f.do(req)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("POST: got %d %q, want 502", resp.StatusCode, body)
	}
	if broken.Load() != 1 || good.Load() != 0 {
		t.Fatalf("POST: broken got %d, good got %d; want 1 and 0 (no retry)", broken.Load(), good.Load())
	}

	// Next in turn is the good one; the one after, broken again: a
	// bodiless GET is retried there.
	if resp, _ := f.get("/x"); resp.StatusCode != 200 {
		t.Fatalf("GET: got %d", resp.StatusCode)
	}
	resp, body = f.get("/y")
	if resp.StatusCode != http.StatusOK || body != "fine" {
		t.Fatalf("GET after a broken attempt: got %d %q, want a retried 200", resp.StatusCode, body)
	}
	if broken.Load() != 2 || good.Load() != 2 {
		t.Fatalf("broken got %d, good got %d; want 2 and 2", broken.Load(), good.Load())
	}
	lines := f.accessLines(3)
	if last := lines[len(lines)-1]; !strings.Contains(last, "upstream="+goodAddr+" attempts=2") {
		t.Fatalf("access log: got %q, want 2 attempts ending on %s", last, goodAddr)
	}
}

func TestRetriesBounded(t *testing.T) {
	f := newFixture(t, "text")
	var hits atomic.Int32
	addrs := make([]string, 5)
	for i := range addrs {
		addrs[i] = brokenBackend(t, &hits)
	}
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"s": {Retries: 2}}, setOf(t, "s", addrs...))
	if resp, _ := f.get("/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d, want 502", resp.StatusCode)
	}
	if n := hits.Load(); n != 3 {
		t.Fatalf("got %d attempts, want 3 (1 + 2 retries)", n)
	}
}

func TestClientGoneIsLogged499(t *testing.T) {
	f := newFixture(t, "text")
	entered := make(chan struct{}, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))

	c, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	c.Close()
	waitFor(t, "the access log line", func() bool { return len(f.access.Lines()) == 1 })
	if line := f.access.Lines()[0]; !strings.Contains(line, `"GET /wait HTTP/1.1" 499 0 `) {
		t.Fatalf("got %q, want status 499 and no bytes", line)
	}
}

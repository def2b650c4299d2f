package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
)

// The eleven behaviours of the forwarding-core issue, each through both
// lanes (TestMain runs the package twice). e2e/faults_test.go and
// e2e/differential_test.go cover the same ground systematically, black-box.

// scripted is a raw upstream: serve runs for each request read on a
// connection (n counts the connection's requests from 1) and writes the
// answer itself; returning false closes the connection. It counts
// executions per path.
type scripted struct {
	addr string
	mu   sync.Mutex
	runs map[string]int
}

func scriptedBackend(t *testing.T, serve func(c net.Conn, n int, req *http.Request) bool) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{addr: ln.Addr().String(), runs: map[string]int{}}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 1; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					s.mu.Lock()
					s.runs[req.URL.Path]++
					s.mu.Unlock()
					if !serve(c, n, req) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return s
}

func (s *scripted) executions(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[path]
}

func answer(c net.Conn, body string) bool {
	_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	return err == nil
}

// rawRoundTrip writes raw on c and reads one response to method.
func rawRoundTrip(t *testing.T, c net.Conn, br *bufio.Reader, method, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%q: body: %v", raw, err)
	}
	return resp, string(b)
}

// Behaviours 1 and 2: a request on a reused upstream connection that timed
// out, or that the upstream executed and then closed without answering, is
// not sent again.
func TestNoResendOnReusedConnection(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		fault        func(c net.Conn) bool
		status       int
	}{
		{"timeout GET", "GET", func(c net.Conn) bool { time.Sleep(700 * time.Millisecond); return false }, 504},
		{"timeout POST", "POST", func(c net.Conn) bool { time.Sleep(700 * time.Millisecond); return false }, 504},
		{"closed without answer POST", "POST", func(c net.Conn) bool { return false }, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "text")
			be := scriptedBackend(t, func(c net.Conn, n int, req *http.Request) bool {
				if req.URL.Path == "/fault" {
					return tc.fault(c)
				}
				return answer(c, "warm")
			})
			f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
				map[string]route.ServiceSpec{"s": {Retries: 2, ResponseTimeout: 300 * time.Millisecond}}, setOf(t, "s", be.addr))
			if _, body := f.get("/warm"); body != "warm" {
				t.Fatalf("warm-up: got %q", body)
			}
			req, _ := http.NewRequest(tc.method, f.front.URL+"/fault", strings.NewReader(strings.Repeat("p", 10)))
			if tc.method == "GET" {
				req.Body, req.ContentLength = nil, 0
			}
			if resp, _ := f.do(req); resp.StatusCode != tc.status {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.status)
			}
			if n := be.executions("/fault"); n != 1 {
				t.Errorf("the backend executed the request %d times, want once", n)
			}
		})
	}
}

// Behaviour 3: bytes an upstream sends past a response's framing never
// become another request's answer.
func TestLateBytesNeverAnswerAnotherRequest(t *testing.T) {
	for _, tc := range []struct{ name, method, resp string }{
		{"body after a HEAD answer", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"},
		{"past Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"},
		{"after the last chunk", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"},
		{"late, while idle", "GET", "late"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "text")
			be := scriptedBackend(t, func(c net.Conn, n int, req *http.Request) bool {
				if req.URL.Path == "/victim" {
					return answer(c, "victim")
				}
				if tc.resp == "late" {
					answer(c, "ok")
					time.Sleep(50 * time.Millisecond)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED")
					return true
				}
				io.WriteString(c, tc.resp)
				return true
			})
			f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", be.addr))
			req, _ := http.NewRequest(tc.method, f.front.URL+"/first", nil)
			f.do(req)
			time.Sleep(100 * time.Millisecond) // let late bytes arrive
			for i := 0; i < 3; i++ {
				if _, body := f.get("/victim"); body != "victim" {
					t.Fatalf("request %d: got %q, want its own answer", i, body)
				}
			}
		})
	}
}

// Behaviour 4: a client that leaves while a quiet body streams releases the
// upstream connection and every count within a bounded time.
func TestClientGoneWhileBodyStreams(t *testing.T) {
	f := newFixture(t, "text")
	closed := make(chan time.Time, 1)
	be := scriptedBackend(t, func(c net.Conn, n int, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.Read(make([]byte, 1)) // until ferry closes the connection
		closed <- time.Now()
		return false
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", be.addr))
	c := f.dial()
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 7)); err != nil {
		t.Fatal(err)
	}
	left := time.Now()
	c.Close()
	select {
	case at := <-closed:
		if d := at.Sub(left); d > 3*time.Second {
			t.Errorf("upstream connection closed %v after the client left", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream connection stayed open after the client left")
	}
	svc := f.handler.Table().Service("s")
	waitFor(t, "counts released", func() bool {
		return svc.Budget.Requests.Load() == 0 && svc.Upstreams()[0].Health.InFlight() == 0
	})
}

// Behaviours 5 and 6: ferry's own answer to a HEAD has no body and leaves
// the connection usable; a 204 is relayed without Transfer-Encoding.
func TestAnswersFollowRFC9110(t *testing.T) {
	f := newFixture(t, "text")
	be := scriptedBackend(t, func(c net.Conn, n int, req *http.Request) bool {
		if req.URL.Path == "/nc" {
			io.WriteString(c, "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n")
			return false
		}
		return answer(c, "next")
	})
	dead := deadAddr(t)
	f.route([]route.RouteSpec{{Name: "dead", PathPrefix: "/dead", Service: "dead"}, {Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"dead": {Retries: 0}}, setOf(t, "s", be.addr), setOf(t, "dead", dead))
	c := f.dial()
	br := bufio.NewReader(c)
	resp, body := rawRoundTrip(t, c, br, "HEAD", "HEAD /dead HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 502 || body != "" {
		t.Errorf("HEAD to a dead service: got %d with %q, want 502 without a body", resp.StatusCode, body)
	}
	if resp, body := rawRoundTrip(t, c, br, "GET", "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || body != "next" {
		t.Errorf("the next request on the connection: got %d %q", resp.StatusCode, body)
	}
	c2 := f.dial()
	io.WriteString(c2, "GET /nc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	head, _ := io.ReadAll(c2) // until ferry closes, as asked
	if h := string(head); strings.Contains(strings.ToLower(h), "transfer-encoding") || !strings.HasPrefix(h, "HTTP/1.1 204") {
		t.Errorf("204 relayed as %q, want no Transfer-Encoding", head)
	}
}

// Behaviours 7, 9 and 10: one authority routes and is forwarded; the query
// is forwarded byte for byte; an empty Host is refused and a missing one
// (HTTP/1.0) is never replaced by the upstream's address.
func TestAuthorityAndQueryAsSent(t *testing.T) {
	f := newFixture(t, "text")
	var mu sync.Mutex
	seen := map[string][2]string{} // backend → request URI, Host
	backendNamed := func(name string) string {
		return scriptedBackend(t, func(c net.Conn, n int, req *http.Request) bool {
			mu.Lock()
			seen[name] = [2]string{req.RequestURI, req.Host}
			mu.Unlock()
			return answer(c, name)
		}).addr
	}
	admin, other := backendNamed("admin"), backendNamed("other")
	f.route([]route.RouteSpec{{Name: "admin", Host: "admin.example", PathPrefix: "/", Service: "admin"}, {Name: "any", PathPrefix: "/", Service: "other"}},
		nil, setOf(t, "admin", admin), setOf(t, "other", other))
	check := func(raw, wantBackend, wantURI, wantHost string) {
		t.Helper()
		c := f.dial()
		resp, body := rawRoundTrip(t, c, bufio.NewReader(c), "GET", raw)
		if resp.StatusCode != 200 || body != wantBackend {
			t.Errorf("%q: got %d %q, want %s", raw, resp.StatusCode, body, wantBackend)
			return
		}
		mu.Lock()
		got := seen[wantBackend]
		mu.Unlock()
		if got[0] != wantURI || got[1] != wantHost {
			t.Errorf("%q: %s saw %q with Host %q, want %q with Host %q", raw, wantBackend, got[0], got[1], wantURI, wantHost)
		}
	}
	check("GET http://admin.example/x HTTP/1.1\r\nHost: shop.example\r\n\r\n", "admin", "/x", "admin.example")
	check("GET /q?x=!$'()*,;=:@/?&y=%20 HTTP/1.1\r\nHost: shop\r\n\r\n", "other", "/q?x=!$'()*,;=:@/?&y=%20", "shop")
	check("GET /q?a=%zz&b=% HTTP/1.1\r\nHost: shop\r\n\r\n", "other", "/q?a=%zz&b=%", "shop")
	check("GET /old HTTP/1.0\r\n\r\n", "other", "/old", "")

	c := f.dial()
	if resp, _ := rawRoundTrip(t, c, bufio.NewReader(c), "GET", "GET / HTTP/1.1\r\nHost: \r\n\r\n"); resp.StatusCode != 400 {
		t.Errorf("empty Host: got %d, want 400", resp.StatusCode)
	}
}

// Behaviour 11: an upstream head with bare-LF line ends is relayed at once.
func TestBareLFResponseRelayed(t *testing.T) {
	f := newFixture(t, "text")
	be := scriptedBackend(t, func(c net.Conn, n int, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nok")
		return true
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"s": {ResponseTimeout: 5 * time.Second}}, setOf(t, "s", be.addr))
	start := time.Now()
	resp, body := f.get("/lf")
	if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("X-A") != "1" {
		t.Errorf("got %d %q %v, want 200 ok with X-A", resp.StatusCode, body, resp.Header)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v: the head was not recognised", d)
	}
}

// A backend that answers before reading the whole request body (a 413, a
// 401) has its answer relayed; the client connection closes after it, its
// body being unread.
func TestEarlyAnswerRelayed(t *testing.T) {
	f := newFixture(t, "text")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil { // the head only
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!")
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c) // a lingering close, as nginx does
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", ln.Addr().String()))

	c := f.dial()
	const size = 4 << 20
	go func() {
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		c.Write(make([]byte, size)) // fails once ferry closes: fine
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || string(body) != "big!" {
		t.Errorf("got %d %q, want the upstream's 413", resp.StatusCode, body)
	}
	if resp.Close {
		return
	}
	// The answer came after ferry had read the whole body (the backend
	// drains it before closing, and on a loaded machine ferry can finish
	// sending first): then the connection is in step and must serve the
	// next request.
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp2, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Errorf("the client connection stayed open but is out of step: %v", err)
	} else {
		resp2.Body.Close()
	}
}

// Request trailers of a chunked upload reach the upstream.
func TestRequestTrailersForwarded(t *testing.T) {
	f := newFixture(t, "text")
	got := make(chan string, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r.Trailer.Get("X-Checksum")
	})
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(be)))
	c := f.dial()
	resp, _ := rawRoundTrip(t, c, bufio.NewReader(c), "POST", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"+
		"3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	if v := <-got; v != "900150983cd24fb0" {
		t.Errorf("upstream trailer X-Checksum: got %q", v)
	}
}

// TestBodyCutOffIsNotCompleted: an upstream that breaks in the middle of a
// chunked body leaves the client with an incomplete body it can tell from
// a whole one — in both lanes (net/http would otherwise end the chunked
// body cleanly).
func TestBodyCutOffIsNotCompleted(t *testing.T) {
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
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
				c.(*net.TCPConn).SetLinger(0)
			}
			c.Close() // reset mid-body
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, map[string]route.ServiceSpec{"s": {Retries: 0}},
		setOf(t, "s", ln.Addr().String()))
	c := f.dial()
	io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("the client read %q as a complete body", body)
	}
}

package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// The adversarial suite speaks raw bytes to a running ferry with a
// recording backend behind it and checks, for each hostile request, the
// status, whether ferry closed the connection, and what reached the backend.

// recorder is a backend that counts the bytes and requests it receives and
// remembers the last request's target and headers.
type recorder struct {
	*backend
	bytes    atomic.Int64
	requests atomic.Int64
	mu       sync.Mutex
	lastURI  string
	lastHdr  http.Header
}

func startRecorder(t *testing.T, name string, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.requests.Add(1)
		rec.mu.Lock()
		rec.lastURI, rec.lastHdr = r.RequestURI, r.Header.Clone()
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, name)
	}))
	srv.Listener = &countingListener{Listener: srv.Listener, n: &rec.bytes}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().(*net.TCPAddr)
	rec.backend = &backend{Name: name, Addr: addr.String(), Port: addr.Port, srv: srv}
	return rec
}

func (r *recorder) last() (string, http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastURI, r.lastHdr
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// trap is a listener that must never be connected to: an open proxy would.
type trap struct {
	ln    net.Listener
	conns atomic.Int64
}

func startTrap(t *testing.T, host string) *trap {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &trap{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.conns.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return tr
}

func (tr *trap) Addr() string { return tr.ln.Addr().String() }

// rawResult is what came back for raw request bytes.
type rawResult struct {
	status int // 0: no response
	header http.Header
	body   string
	closed bool // ferry closed the connection after the response
}

// sendRaw writes raw to addr, reads one response, then checks whether the
// connection is closed.
func sendRaw(t *testing.T, addr, raw string, closeWait time.Duration) rawResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readRaw(t, c, 5*time.Second, closeWait)
}

// readRaw reads one response within wait, then waits up to closeWait for
// the connection to be closed.
func readRaw(t *testing.T, c net.Conn, wait, closeWait time.Duration) rawResult {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return rawResult{closed: isClosed(err)}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res := rawResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
	c.SetReadDeadline(time.Now().Add(closeWait))
	_, err = br.ReadByte()
	res.closed = err != nil && isClosed(err)
	return res
}

func isClosed(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

const adversarialConfig = `
listen = "%LISTEN%"
admin  = "%ADMIN%"
shutdown_timeout = "2s"
consul {
  address = "%CONSUL%"
}
limits {
  read_header_timeout = "1s"
  read_timeout        = "1s"
  write_idle_timeout  = "1s"
  max_header_count    = 20
}
service "slow" {
  max_requests         = 1
  max_pending_requests = 0 # no queue: the refusal at max_requests is what is tested here
  retries              = 0
}
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
route "small" {
  path_prefix    = "/small"
  service        = "user"
  max_body_bytes = 16
}
route "slow" {
  path_prefix = "/slow"
  service     = "slow"
}
`

// adversarialCase is one hostile request. backend is how many requests
// the backend may receive for it (-1: any).
type adversarialCase struct {
	name    string
	raw     string
	status  int
	closed  bool // ferry must close the connection
	backend int64
	check   func(t *testing.T, res rawResult, rec *recorder)
}

func TestAdversarial(t *testing.T) {
	agent := consultest.Start(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	rec := startRecorder(t, "user-1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/user/early":
			h := w.Header()
			h.Set("Link", "</style.css>; rel=preload")
			h.Set("Connection", "X-Hop")
			h.Set("X-Hop", "secret")
			h.Set("Keep-Alive", "timeout=5")
			w.WriteHeader(http.StatusEarlyHints)
			h.Del("Link")
		case "/api/user/close":
			w.Header().Set("Connection", "close, X-Secret")
			w.Header().Set("X-Secret", "s")
		case "/api/user/big":
			chunk := strings.Repeat("x", 64<<10)
			for i := 0; i < 1024; i++ { // 64 MiB
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
			return
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "user-1")
	})
	register(t, agent.Client(), "user", rec.backend)
	slow := startRecorder(t, "slow-1", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "slow")
	})
	register(t, agent.Client(), "slow", slow.backend)
	tr := startTrap(t, "127.0.0.1")

	f := startFerry(t, agent.HTTPAddr, adversarialConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 1)
	addr := strings.TrimPrefix(f.URL, "http://")

	manyHeaders := "GET /api/user/x HTTP/1.1\r\nHost: x\r\n"
	for i := 0; i < 21; i++ {
		manyHeaders += fmt.Sprintf("X-H%d: v\r\n", i)
	}
	manyHeaders += "\r\n"

	cases := []adversarialCase{
		// Request smuggling: ambiguous framing is refused and the
		// connection closed before anything is forwarded.
		{name: "CL then TE", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", status: 400, closed: true},
		{name: "TE then CL", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", status: 400, closed: true},
		{name: "CL.TE with a smuggled request", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 49\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/user/smuggled HTTP/1.1\r\nHost: x\r\n\r\n", status: 400, closed: true},
		{name: "TE chunked with CL 0", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", status: 400, closed: true},
		{name: "duplicate equal Content-Length", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", status: 400, closed: true},
		{name: "duplicate different Content-Length", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", status: 400, closed: true},
		{name: "Content-Length list", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", status: 400, closed: true},
		{name: "Content-Length with sign", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", status: 400, closed: true},
		{name: "negative Content-Length", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nabc", status: 400, closed: true},
		{name: "hex Content-Length", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc", status: 400, closed: true},
		{name: "TE xchunked", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", status: 501, closed: true},
		{name: "TE list", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501, closed: true},
		{name: "two TE headers", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", status: 501, closed: true},
		{name: "TE folded", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", status: 400, closed: true},
		{name: "folded header", raw: "GET /api/user/a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n", status: 400, closed: true},
		{name: "TE space before colon", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", status: 400, closed: true},
		{name: "TE with vertical tab", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n", status: 400, closed: true},
		{name: "TE underscore alias", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", status: 400, closed: true},
		{name: "HTTP/1.0 with TE", raw: "POST /api/user/a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400, closed: true},
		{name: "HTTP/1.0 with TE and CL", raw: "POST /api/user/a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", status: 400, closed: true},
		{name: "bad chunk size", raw: "POST /api/user/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", status: 400, closed: true, backend: -1},
		{name: "HTTP/2 preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 400, closed: true},
		{name: "HTTP/0.9", raw: "GET /api/user/a\r\n\r\n", status: 400, closed: true},
		{name: "missing Host", raw: "GET /api/user/a HTTP/1.1\r\n\r\n", status: 400, closed: true},
		{name: "two Hosts", raw: "GET /api/user/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400, closed: true},

		// Hop-by-hop abuse.
		{name: "Connection nominates X-Forwarded-For", raw: "GET /api/user/hop HTTP/1.1\r\nHost: x\r\nConnection: X-Forwarded-For, X-Real-IP\r\nX-Forwarded-For: 203.0.113.7\r\nX-Real-IP: 203.0.113.7\r\n\r\n",
			status: 200, backend: 1, check: func(t *testing.T, res rawResult, rec *recorder) {
				_, h := rec.last()
				if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
					t.Errorf("backend X-Forwarded-For: got %q, want 127.0.0.1", got)
				}
				if got := h.Get("X-Real-Ip"); got != "" {
					t.Errorf("backend X-Real-IP: got %q, want none", got)
				}
			}},
		{name: "Connection nominates Host-critical headers", raw: "GET /api/user/hop HTTP/1.1\r\nHost: x\r\nConnection: X-Forwarded-Proto, X-Forwarded-Host\r\n\r\n",
			status: 200, backend: 1, check: func(t *testing.T, res rawResult, rec *recorder) {
				_, h := rec.last()
				if h.Get("X-Forwarded-Proto") != "http" || h.Get("X-Forwarded-Host") != "x" {
					t.Errorf("backend X-Forwarded-Proto/Host: got %q/%q, want http/x", h.Get("X-Forwarded-Proto"), h.Get("X-Forwarded-Host"))
				}
			}},
		{name: "Upgrade h2c ignored", raw: "GET /api/user/h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
			status: 200, backend: 1, check: func(t *testing.T, res rawResult, rec *recorder) {
				_, h := rec.last()
				if h.Get("Upgrade") != "" || h.Get("Http2-Settings") != "" {
					t.Errorf("backend got Upgrade %q, HTTP2-Settings %q; want neither", h.Get("Upgrade"), h.Get("Http2-Settings"))
				}
			}},
		{name: "upstream nominates with close", raw: "GET /api/user/close HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, backend: 1,
			check: func(t *testing.T, res rawResult, rec *recorder) {
				if v := res.header.Get("X-Secret"); v != "" {
					t.Errorf("client got X-Secret %q, nominated by the upstream's Connection header", v)
				}
			}},

		// Path tricks: one canonical form, routed and forwarded.
		{name: "dot-dot out of the route", raw: "GET /api/user/../admin HTTP/1.1\r\nHost: x\r\n\r\n", status: 404},
		{name: "encoded dot-dot", raw: "GET /api/user/%2e%2e/%2E%2E/admin HTTP/1.1\r\nHost: x\r\n\r\n", status: 404},
		{name: "dot-dot-semicolon", raw: "GET /api/user/..;/admin HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "encoded dot-dot-semicolon", raw: "GET /api/user/%2e%2e;x/admin HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "encoded slash", raw: "GET /api/user%2f..%2fadmin HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "backslash", raw: "GET /api/user\\..\\admin HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "encoded backslash", raw: "GET /api/user/%5c HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "encoded NUL", raw: "GET /api/user/%00 HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "raw NUL", raw: "GET /api/user/\x00 HTTP/1.1\r\nHost: x\r\n\r\n", status: 400, closed: true},
		{name: "encoded control", raw: "GET /api/user/%0d%0aX:%20y HTTP/1.1\r\nHost: x\r\n\r\n", status: 400},
		{name: "fragment", raw: "GET /api/user/a#frag HTTP/1.1\r\nHost: x\r\n\r\n", status: 400, closed: true},
		{name: "merged slashes", raw: "GET //api//user///x HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, backend: 1,
			check: wantURI("/api/user/x")},
		{name: "dots inside the route", raw: "GET /api/user/a/./b/../c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, backend: 1,
			check: wantURI("/api/user/a/c?q=1")},
		{name: "unreserved escape decoded", raw: "GET /api/user/%7Ename%2Dx HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, backend: 1,
			check: wantURI("/api/user/~name-x")},
		{name: "reserved escape kept", raw: "GET /api/user/a%3fb HTTP/1.1\r\nHost: x\r\n\r\n", status: 200, backend: 1,
			check: wantURI("/api/user/a%3Fb")},
		{name: "segment boundary", raw: "GET /api/users HTTP/1.1\r\nHost: x\r\n\r\n", status: 404},
		{name: "case kept", raw: "GET /API/user/x HTTP/1.1\r\nHost: x\r\n\r\n", status: 404},

		// No open proxy.
		{name: "absolute-form to another host", raw: "GET http://" + tr.Addr() + "/api/user/abs HTTP/1.1\r\nHost: " + tr.Addr() + "\r\n\r\n",
			status: 200, backend: 1, check: wantURI("/api/user/abs")},
		{name: "absolute-form without a route", raw: "GET http://" + tr.Addr() + "/ HTTP/1.1\r\nHost: x\r\n\r\n", status: 404},
		{name: "CONNECT", raw: "CONNECT " + tr.Addr() + " HTTP/1.1\r\nHost: " + tr.Addr() + "\r\n\r\n", status: 405},
		{name: "Host names another server", raw: "GET /api/user/h HTTP/1.1\r\nHost: " + tr.Addr() + "\r\n\r\n", status: 200, backend: 1},
		{name: "X-Forwarded-Host names another server", raw: "GET /api/user/h HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: " + tr.Addr() + "\r\n\r\n", status: 200, backend: 1,
			check: func(t *testing.T, res rawResult, rec *recorder) {
				if _, h := rec.last(); h.Get("X-Forwarded-Host") != "x" {
					t.Errorf("backend X-Forwarded-Host: got %q, want x", h.Get("X-Forwarded-Host"))
				}
			}},
		{name: "OPTIONS asterisk", raw: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", status: 400, closed: true},

		// Header limits.
		{name: "header name with underscore", raw: "GET /api/user/a HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n", status: 400, closed: true},
		{name: "too many headers", raw: manyHeaders, status: 431, closed: true},
		{name: "huge header", raw: "GET /api/user/a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", status: 431, closed: true},

		// Body limits.
		{name: "declared body over max_body_bytes", raw: "POST /small/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("a", 100), status: 413, closed: true},
		{name: "chunked body over max_body_bytes", raw: "POST /small/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + strings.Repeat("a", 64) + "\r\n0\r\n\r\n", status: 413, closed: true, backend: -1},
		{name: "body within max_body_bytes", raw: "POST /small/a HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n" + strings.Repeat("a", 16), status: 200, backend: 1},
	}

	var failed []string
	for _, tc := range cases {
		ok := t.Run(tc.name, func(t *testing.T) {
			reqs, bytes0, traps := rec.requests.Load(), rec.bytes.Load(), tr.conns.Load()
			closeWait := 50 * time.Millisecond // no close expected: do not wait long
			if tc.closed {
				closeWait = 2 * time.Second
			}
			res := sendRaw(t, addr, tc.raw, closeWait)
			if res.status != tc.status {
				t.Errorf("status: got %d (%q), want %d", res.status, res.body, tc.status)
			}
			if tc.closed && !res.closed {
				t.Errorf("connection left open, want it closed")
			}
			time.Sleep(20 * time.Millisecond) // let a forwarded request land
			if got := rec.requests.Load() - reqs; tc.backend >= 0 && got != tc.backend {
				t.Errorf("backend got %d requests, want %d", got, tc.backend)
			}
			if tc.backend == 0 {
				if got := rec.bytes.Load() - bytes0; got != 0 {
					t.Errorf("backend received %d bytes, want none", got)
				}
			}
			if got := tr.conns.Load() - traps; got != 0 {
				t.Errorf("ferry connected %d times to the host named by the request, want never", got)
			}
			if tc.check != nil {
				tc.check(t, res, rec)
			}
		})
		if !ok {
			failed = append(failed, tc.name)
		}
	}
	t.Logf("adversarial cases: %d, failed: %d %q", len(cases), len(failed), failed)

	t.Run("1xx without hop-by-hop headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /api/user/early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		all, _ := io.ReadAll(c)
		head, _, _ := strings.Cut(string(all), "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 103") {
			t.Fatalf("first response: got %q, want a 103", head)
		}
		if !strings.Contains(head, "Link:") {
			t.Errorf("103 lost its Link header: %q", head)
		}
		for _, h := range []string{"X-Hop", "Keep-Alive", "Connection: X-Hop"} {
			if strings.Contains(head, h) {
				t.Errorf("103 carries hop-by-hop %q: %q", h, head)
			}
		}
	})

	t.Run("pipelined requests after a good one", func(t *testing.T) {
		// A valid chunked request followed by a smuggling attempt on the
		// same connection: the first is served, the second refused.
		reqs := rec.requests.Load()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /api/user/p1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"+
			"POST /api/user/p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i, want := range []int{200, 400} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i+1, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("response %d: got %d, want %d", i+1, resp.StatusCode, want)
			}
		}
		if got := rec.requests.Load() - reqs; got != 1 {
			t.Errorf("backend got %d requests, want 1", got)
		}
	})

	t.Run("slowloris headers", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "GET /api/user/slow HTTP/1.1\r\nHost: x\r\n")
		for i := 0; i < 10; i++ { // a header byte every 300 ms
			time.Sleep(300 * time.Millisecond)
			if _, err := io.WriteString(c, "X"); err != nil {
				break
			}
		}
		res := readRaw(t, c, 5*time.Second, 2*time.Second)
		if !res.closed || time.Since(start) > 4*time.Second {
			t.Errorf("connection still open after %v (status %d), want closed after read_header_timeout (1s)", time.Since(start), res.status)
		}
	})

	t.Run("slowloris body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "POST /api/user/slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
		res := readRaw(t, c, 5*time.Second, 2*time.Second)
		if res.status != http.StatusRequestTimeout || !res.closed {
			t.Errorf("got %d (closed %v), want 408 and the connection closed", res.status, res.closed)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("answered after %v, want about read_timeout (1s)", d)
		}
	})

	t.Run("broken client bodies do not eject the backend", func(t *testing.T) {
		for i := 0; i < 8; i++ { // more than consecutive_failures (5)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "POST /api/user/broken HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("a", 100))
			time.Sleep(50 * time.Millisecond)
			c.(*net.TCPConn).SetLinger(0) // a reset
			c.Close()
		}
		time.Sleep(100 * time.Millisecond)
		for i := 0; i < 3; i++ {
			if code, body := get(t, f.URL+"/api/user/after"); code != 200 {
				t.Fatalf("after broken bodies: got %d %q, want 200 (the only instance must not be ejected)", code, body)
			}
		}
	})

	t.Run("client that never reads", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		io.WriteString(c, "GET /api/user/big HTTP/1.1\r\nHost: x\r\n\r\n")
		// write_idle_timeout is 1s: ferry gives up on the response, and
		// its access log records the request as finished, while this
		// client still reads nothing.
		waitFor(t, 8*time.Second, "ferry to give up on a client that stopped reading", func() bool {
			return strings.Contains(f.AccessLog(), "GET /api/user/big")
		})
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, _ := io.Copy(io.Discard, c); n >= 64<<20 {
			t.Errorf("read the whole 64 MiB body; want ferry to have given up")
		}
	})

	t.Run("max_requests", func(t *testing.T) {
		done := make(chan int, 1)
		go func() {
			resp, err := client.Get(f.URL + "/slow/held")
			if err != nil {
				done <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		waitFor(t, 5*time.Second, "the first slow request to reach the backend", func() bool { return slow.requests.Load() == 1 })
		start := time.Now()
		code, body := get(t, f.URL+"/slow/second")
		if code != 503 || !strings.Contains(body, "max_requests") {
			t.Errorf("second request: got %d %q, want 503 naming max_requests", code, body)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("503 took %v, want it at once", d)
		}
		releaseOnce.Do(func() { close(release) })
		if code := <-done; code != 200 {
			t.Errorf("held request: got %d, want 200", code)
		}
		if n := slow.requests.Load(); n != 1 {
			t.Errorf("slow backend got %d requests, want 1", n)
		}
	})

	// ferry survived all of it.
	if code, _ := get(t, f.URL+"/api/user/still-alive"); code != 200 {
		t.Fatalf("after the suite: got %d, want 200", code)
	}
}

func wantURI(uri string) func(t *testing.T, res rawResult, rec *recorder) {
	return func(t *testing.T, res rawResult, rec *recorder) {
		if got, _ := rec.last(); got != uri {
			t.Errorf("backend request URI: got %q, want %q", got, uri)
		}
	}
}

// TestEnvironmentProxyIgnored runs ferry with HTTP_PROXY pointing at a trap:
// upstream traffic must go straight to the instance. The backend listens on
// a non-loopback address, since Go never proxies loopback addresses anyway.
func TestEnvironmentProxyIgnored(t *testing.T) {
	ip := nonLoopbackIPv4(t)
	agent := consultest.Start(t)
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "direct")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	port := ln.Addr().(*net.TCPAddr).Port
	err = agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "user-direct", Name: "user", Address: ip, Port: port,
		Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := startTrap(t, "127.0.0.1")
	proxyURL := "http://" + tr.Addr()
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		t.Setenv(k, proxyURL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitFor(t, 10*time.Second, "routing to the instance", func() bool { return statusOf(f.URL+"/api/user/x") == 200 })
	code, body := get(t, f.URL+"/api/user/x")
	if code != 200 || body != "direct" {
		t.Errorf("got %d %q, want 200 \"direct\"", code, body)
	}
	if n := tr.conns.Load(); n != 0 {
		t.Errorf("ferry connected %d times to $HTTP_PROXY, want never", n)
	}
}

func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	if h, err := os.Hostname(); err == nil {
		if ips, err := net.LookupHost(h); err == nil {
			for _, s := range ips {
				if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() && ip.To4() != nil {
					return s
				}
			}
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to test $HTTP_PROXY with")
	return ""
}

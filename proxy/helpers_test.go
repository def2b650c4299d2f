package proxy

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// handlerLane, while true, makes every test frontend hand each connection
// to the Handler at once (see frontend). TestMain runs the package's tests
// through the fast lane first, then again through the Handler, so that both
// lanes meet every test.
var handlerLane bool

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 {
		handlerLane = true
		flag.Set("test.bench", "") // benchmarks say which lane they measure
		flag.Set("test.fuzz", "")  // fuzz targets test pure functions: once is enough
		code = m.Run()
	}
	if code == 0 {
		// net/http's server waits up to 500 ms after a final answer
		// that closes the connection (closeWriteAndWait), past Close.
		if err := goleak.Find(goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// frontend is a real data-plane Server on a loopback listener, with the
// handful of httptest.Server's fields the tests use.
type frontend struct {
	URL      string
	Listener net.Listener
	server   *Server
	client   *http.Client
	done     chan struct{}
}

func newFrontend(t testing.TB, h *Handler) *frontend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(h, &http.Server{ReadHeaderTimeout: 10 * time.Second}, GuardOptions{MaxHeaderCount: 100})
	s.handOffAll = handlerLane
	f := &frontend{URL: "http://" + ln.Addr().String(), Listener: ln, server: s,
		client: &http.Client{Transport: &http.Transport{}}, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		s.Serve(ln)
	}()
	return f
}

func (f *frontend) Client() *http.Client { return f.client }

func (f *frontend) Close() {
	f.server.Close()
	<-f.done
	f.client.CloseIdleConnections()
}

// testLogger writes through t.Log, named after the test.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   t.Name(),
		Level:  hclog.Debug,
		Output: testWriter{t},
	})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// lockedBuffer is a concurrency-safe access-log sink.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSuffix(l.b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// instanceOf turns a listening address into a discovery instance.
func instanceOf(t testing.TB, id, addr string) discovery.Instance {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return discovery.Instance{ID: id, Node: "node1", Address: host, Port: p, Weight: 1}
}

// setOf returns a known instance set with one instance per address, in order.
func setOf(t testing.TB, service string, addrs ...string) *discovery.InstanceSet {
	t.Helper()
	s := &discovery.InstanceSet{Service: service, Known: true}
	for i, a := range addrs {
		s.Instances = append(s.Instances, instanceOf(t, fmt.Sprintf("%s-%d", service, i), a))
	}
	return s
}

// fixture is a real frontend (a Server running a Handler) over
// whatever backends a test starts.
type fixture struct {
	t       *testing.T
	reg     *health.Registry
	builder *route.Builder
	handler *Handler
	front   *frontend
	access  *lockedBuffer
}

func newFixture(t *testing.T, format string) *fixture {
	t.Helper()
	f := &fixture{t: t, reg: health.NewRegistry(), access: &lockedBuffer{}}
	logger := testLogger(t)
	f.builder = route.NewBuilder(f.reg, logger.Named("builder"))
	f.handler = NewHandler(Options{Logger: logger, AccessLog: accesslog.New(f.access, format)})
	f.front = newFrontend(t, f.handler)
	t.Cleanup(func() {
		f.front.Close()
		f.builder.Close()
	})
	return f
}

// dial opens a raw connection to the frontend, closed at cleanup, whose
// reads and writes give up after 10 s.
func (f *fixture) dial() net.Conn {
	f.t.Helper()
	c, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// accessLines waits for the access log to hold n lines and returns them.
// The fast lane logs a request after its response reached the client, so a
// client may see the response before its line is written.
func (f *fixture) accessLines(n int) []string {
	f.t.Helper()
	waitFor(f.t, fmt.Sprintf("%d access log lines", n), func() bool { return len(f.access.Lines()) >= n })
	return f.access.Lines()
}

// route stores a table with the given routes, specs and sets.
func (f *fixture) route(routes []route.RouteSpec, specs map[string]route.ServiceSpec, sets ...*discovery.InstanceSet) {
	m := make(map[string]*discovery.InstanceSet)
	for _, s := range sets {
		m[s.Service] = s
	}
	f.handler.Store(f.builder.Build(routes, specs, m))
}

// backend starts a backend server closed at cleanup.
func backend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// addr is a server's host:port.
func addr(s *httptest.Server) string { return s.Listener.Addr().String() }

// deadAddr returns an address that refuses connections: listen, then close.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// get sends a request through the frontend and returns status, headers and body.
func (f *fixture) do(req *http.Request) (*http.Response, string) {
	f.t.Helper()
	resp, err := f.front.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		f.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, b.String()
}

func (f *fixture) get(path string) (*http.Response, string) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.front.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.do(req)
}

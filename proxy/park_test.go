package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// parkingServer is a fast-lane Server that parks connections quiet for
// parkAfter, in front of a backend answering each request with its path.
type parkingServer struct {
	t    *testing.T
	s    *Server
	addr string
	done chan struct{} // closed when Serve returned
	err  error         // what Serve returned

	posting chan struct{} // the backend got a POST's head
}

func newParkingServer(t *testing.T, parkAfter, idleTimeout time.Duration, opts GuardOptions) *parkingServer {
	t.Helper()
	if handlerLane {
		t.Skip("the fast lane parks idle connections; the net/http lane does not")
	}
	posting := make(chan struct{}, 1)
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			select {
			case posting <- struct{}{}:
			default:
			}
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, "posted "+string(b))
			return
		}
		io.WriteString(w, r.URL.Path)
	})
	builder := route.NewBuilder(health.NewRegistry(), nil)
	t.Cleanup(builder.Close)
	h := NewHandler(Options{Logger: testLogger(t), AccessLog: accesslog.New(io.Discard, "text")})
	h.Store(builder.Build([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil,
		map[string]*discovery.InstanceSet{"s": setOf(t, "s", addr(be))}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxHeaderCount = 100
	s := NewServer(h, &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idleTimeout}, opts)
	s.parkAfter = parkAfter
	p := &parkingServer{t: t, s: s, addr: ln.Addr().String(), done: make(chan struct{}), posting: posting}
	go func() {
		defer close(p.done)
		p.err = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-p.done
	})
	return p
}

// counts returns the connections served now, parked now, and the guard's
// occupied connection slots (-1: no max_connections), which include the one
// the accept loop holds while it waits for the next connection.
func (p *parkingServer) counts() (active, parked, slots int) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	slots = -1
	if gl, ok := p.s.ln.(*guardListener); ok && gl.slots != nil {
		slots = len(gl.slots)
	}
	return len(p.s.conns), p.s.parkedLocked(), slots
}

func (p *parkingServer) waitCounts(what string, active, parked int) {
	p.t.Helper()
	waitFor(p.t, what, func() bool {
		a, pk, _ := p.counts()
		// The gauge (ferry_proxy_parked_connections) agrees.
		return a == active && pk == parked && p.s.h.Stats().ParkedConns() == int64(parked)
	})
}

func (p *parkingServer) waitSlots(want int) {
	p.t.Helper()
	waitFor(p.t, fmt.Sprintf("%d connection slots taken", want), func() bool { _, _, s := p.counts(); return s == want })
}

// checkLeaks checks, after every other cleanup of t, that the goroutines
// t started are gone (the poller and the workers among them).
func checkLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// client is one keep-alive connection to the server.
type client struct {
	c  net.Conn
	br *bufio.Reader
}

func (p *parkingServer) dial() *client {
	p.t.Helper()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return &client{c: c, br: bufio.NewReader(c)}
}

// get sends GET path and returns the status and body.
func (c *client) get(path string) (int, string, error) {
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	return c.read()
}

func (c *client) read() (int, string, error) {
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), err
}

func (c *client) wantGet(t *testing.T, path string) {
	t.Helper()
	code, body, err := c.get(path)
	if err != nil || code != 200 || body != path {
		t.Fatalf("GET %s: %d %q %v", path, code, body, err)
	}
}

// wantClosed checks that the server closed the connection.
func (c *client) wantClosed(t *testing.T) {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("got %q %v, want the server's close", b, err)
	}
}

// TestParkedConnectionsServedLater: 2,000 keep-alive connections each get
// an answer, go quiet and are parked (no goroutine, no buffer), then each
// is served again on the same connection; closed by their clients, none is
// left behind, nor a connection slot.
func TestParkedConnectionsServedLater(t *testing.T) {
	checkLeaks(t)
	p := newParkingServer(t, 20*time.Millisecond, time.Minute, GuardOptions{MaxConnections: 3000})
	const n = 2000
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = p.dial()
		clients[i].wantGet(t, fmt.Sprintf("/first/%d", i))
	}
	p.waitCounts("every connection parked", 0, n)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				path := fmt.Sprintf("/again/%d", i)
				if code, body, err := clients[i].get(path); err != nil || code != 200 || body != path {
					errs <- fmt.Errorf("GET %s: %d %q %v", path, code, body, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p.waitCounts("served connections parked again", 0, n)

	for _, c := range clients {
		c.c.Close()
	}
	p.waitCounts("closed connections gone", 0, 0)
	p.waitSlots(1) // the accept loop's
	p.s.Close()
	<-p.done
}

// TestParkedIdleTimeout: a parked connection is closed when its idle
// timeout passes, and its connection slot is free again.
func TestParkedIdleTimeout(t *testing.T) {
	p := newParkingServer(t, 20*time.Millisecond, 1500*time.Millisecond, GuardOptions{MaxConnections: 1})
	c := p.dial()
	c.wantGet(t, "/a")
	p.waitCounts("the connection parked", 0, 1)
	c.wantClosed(t)
	p.waitCounts("the connection gone", 0, 0)
	d := p.dial() // would wait in the backlog if the slot were still taken
	d.wantGet(t, "/b")
}

// TestShutdownClosesParked: Shutdown closes parked connections, as it does
// idle ones, finishes the request in flight, and stops the poller.
func TestShutdownClosesParked(t *testing.T) {
	checkLeaks(t)
	p := newParkingServer(t, 20*time.Millisecond, time.Minute, GuardOptions{})
	parked := make([]*client, 20)
	for i := range parked {
		parked[i] = p.dial()
		parked[i].wantGet(t, "/idle")
	}
	p.waitCounts("the connections parked", 0, len(parked))
	busy := p.dial()
	busy.c.SetDeadline(time.Now().Add(10 * time.Second))
	// A request whose body is still coming when Shutdown starts.
	io.WriteString(busy.c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
	<-p.posting

	shut := make(chan error, 1)
	go func() { shut <- p.s.Shutdown(context.Background()) }()
	for _, c := range parked {
		c.wantClosed(t)
	}
	io.WriteString(busy.c, "cd")
	if code, body, err := busy.read(); err != nil || code != 200 || body != "posted abcd" {
		t.Fatalf("request in flight: %d %q %v", code, body, err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	<-p.done
	if p.err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", p.err)
	}
	if g := p.s.h.Stats().ParkedConns(); g != 0 {
		t.Errorf("parked connections gauge %d after Shutdown", g)
	}
}

// TestCloseClosesParked: Close closes parked connections too.
func TestCloseClosesParked(t *testing.T) {
	checkLeaks(t)
	p := newParkingServer(t, 20*time.Millisecond, time.Minute, GuardOptions{})
	c := p.dial()
	c.wantGet(t, "/a")
	p.waitCounts("the connection parked", 0, 1)
	p.s.Close()
	c.wantClosed(t)
	<-p.done
	if g := p.s.h.Stats().ParkedConns(); g != 0 {
		t.Errorf("parked connections gauge %d after Close", g)
	}
}

// TestRequestsRacingThePark: with a grace of a millisecond, requests sent
// after pauses around it meet their connections while they are being
// parked, parked or woken; every one is answered, in order, including
// pipelined pairs written at once to a parked connection.
func TestRequestsRacingThePark(t *testing.T) {
	p := newParkingServer(t, time.Millisecond, time.Minute, GuardOptions{})
	const conns, rounds = 40, 60
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c := p.dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				time.Sleep(time.Duration(rand.IntN(2500)) * time.Microsecond)
				a, b := fmt.Sprintf("/c%d/r%d/a", i, r), fmt.Sprintf("/c%d/r%d/b", i, r)
				if r%4 == 0 { // pipelined: both heads in one write
					c.c.SetDeadline(time.Now().Add(10 * time.Second))
					fmt.Fprintf(c.c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n", a, b)
					for _, want := range []string{a, b} {
						if code, body, err := c.read(); err != nil || code != 200 || body != want {
							errs <- fmt.Errorf("pipelined %s: %d %q %v", want, code, body, err)
							return
						}
					}
					continue
				}
				if code, body, err := c.get(a); err != nil || code != 200 || body != a {
					errs <- fmt.Errorf("GET %s: %d %q %v", a, code, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHandoffAfterPark: a parked connection whose next request the fast
// lane does not serve (HTTP/1.0 here) is woken and handed to net/http, which
// serves it.
func TestHandoffAfterPark(t *testing.T) {
	p := newParkingServer(t, 20*time.Millisecond, time.Minute, GuardOptions{})
	c := p.dial()
	c.wantGet(t, "/a")
	p.waitCounts("the connection parked", 0, 1)
	before := p.s.h.Stats().Handoffs()
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c.c, "GET /old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
	if code, body, err := c.read(); err != nil || code != 200 || body != "/old" {
		t.Fatalf("HTTP/1.0 after parking: %d %q %v", code, body, err)
	}
	if got := p.s.h.Stats().Handoffs(); got != before+1 {
		t.Errorf("handoffs: %d, want %d", got, before+1)
	}
	p.waitCounts("the handed-off connection no longer the fast lane's", 0, 0)
}

// TestClientCloseWakesParked: a client that closes a parked connection
// ends it on the server's side at once (no wait for the idle timeout).
func TestClientCloseWakesParked(t *testing.T) {
	p := newParkingServer(t, 20*time.Millisecond, time.Hour, GuardOptions{MaxConnections: 10})
	c := p.dial()
	c.wantGet(t, "/a")
	p.waitCounts("the connection parked", 0, 1)
	c.c.Close()
	p.waitCounts("the closed connection gone", 0, 0)
	p.waitSlots(1) // the accept loop's
}

// TestTLSConnectionsNotParked: a connection that may buffer bytes the
// kernel cannot see (TLS) keeps its goroutine.
func TestTLSConnectionsNotParked(t *testing.T) {
	p := newParkingServer(t, 20*time.Millisecond, time.Minute, GuardOptions{})
	p.dial().wantGet(t, "/serving") // Serve has set the server up
	raw, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	parkable := func(conn net.Conn) bool {
		c := &fastConn{s: p.s, raw: conn}
		c.Fd = 3 // a descriptor, as if one had been found
		p.s.mu.Lock()
		defer p.s.mu.Unlock()
		return p.s.parkable(c)
	}
	if parkable(tls.Server(raw, &tls.Config{})) {
		t.Error("a TLS connection is parkable")
	}
	if !parkable(raw) {
		t.Error("a TCP connection is not parkable")
	}
}

// TestOpenConnections: the server's count of open client connections
// (ferry_listener_connections) holds served, parked and handed-off
// connections alike, and falls as they close.
func TestOpenConnections(t *testing.T) {
	p := newParkingServer(t, 20*time.Millisecond, time.Minute, GuardOptions{})
	open := func(want int64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d open connections", want), func() bool { return p.s.OpenConnections() == want })
	}
	a, b, c := p.dial(), p.dial(), p.dial()
	for _, cl := range []*client{a, b, c} {
		cl.wantGet(t, "/x")
	}
	open(3)
	p.waitCounts("the connections parked", 0, 3)
	open(3)
	// A method the fast lane does not serve: c goes to net/http and stays.
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c.c, "TRACE /t HTTP/1.1\r\nHost: x\r\n\r\n")
	if code, _, err := c.read(); err != nil || code == 0 {
		t.Fatalf("TRACE: %d %v", code, err)
	}
	if n := p.s.h.Stats().Handoffs(); n != 1 {
		t.Fatalf("handoffs: %d, want 1", n)
	}
	open(3)
	a.c.Close()
	b.c.Close()
	open(1)
	c.c.Close()
	open(0)
}

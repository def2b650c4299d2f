package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server is the data plane's HTTP/1.1 server. Its fast lane serves the
// everyday request on the connection's own goroutine: it parses the head,
// routes it, and exchanges it with a pooled upstream connection without
// handing it to another goroutine (net/http's server and transport cost two
// to three goroutine hand-offs, a header map and a Request per request,
// which was most of ferry's CPU per request). Anything the fast lane does
// not serve itself — an error to answer, an upgrade, a chunked upload,
// Expect, HTTP/1.0, a head that is unusual in any way (see parseHead) —
// is handed, connection and buffered bytes, to a net/http server running
// the Handler behind the connection guard, which then serves that
// connection to its end. Both lanes share routes, balancers, health state,
// retries, metrics and the access log.
//
// A Server serves one listener (Serve once). It is safe for concurrent use.
type Server struct {
	h        *Handler
	guard    *Guard
	fallback *http.Server
	opts     GuardOptions

	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int

	handoff *handoffListener
	done    atomic.Bool // shutting down or closed: no new requests

	handOffAll bool // tests: every connection goes to the Handler

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup // workers and the fallback server
	stopped chan struct{}  // closed by Shutdown and Close

	// Goroutines that served a connection wait here for the next one: a
	// fresh goroutine grows its stack twice before its first write, which
	// cost a twentieth of a short connection's CPU.
	idleWorkers chan *fastConn
	idleCount   atomic.Int32

	open atomic.Pointer[guardListener] // the listener Serve guards, for OpenConnections

	// Idle connections are parked after parkAfter (see park.go); parker
	// is nil when they are not (set by Serve, before any connection).
	parkAfter time.Duration
	parker    *parker
}

// maxIdleWorkers bounds the goroutines kept waiting for connections.
const maxIdleWorkers = 256

// NewServer returns a server forwarding with h, enforcing opts with a
// connection guard, and handing connections the fast lane does not serve to
// fallback (cmd builds it with the limits block's timeouts; the fast lane
// takes ReadHeaderTimeout, IdleTimeout and MaxHeaderBytes from it too).
// NewServer sets fallback's Handler to h and its ConnContext.
func NewServer(h *Handler, fallback *http.Server, opts GuardOptions) *Server {
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = fallback.MaxHeaderBytes
		if opts.MaxHeaderBytes <= 0 {
			opts.MaxHeaderBytes = http.DefaultMaxHeaderBytes
		}
	}
	g := NewGuard(opts)
	fallback.Handler = h
	fallback.ConnContext = g.ConnContext
	s := &Server{
		h: h, guard: g, fallback: fallback, opts: opts,
		readHeaderTimeout: fallback.ReadHeaderTimeout,
		idleTimeout:       fallback.IdleTimeout,
		maxHeaderBytes:    fallback.MaxHeaderBytes,
		conns:             make(map[*fastConn]struct{}),
		stopped:           make(chan struct{}),
		idleWorkers:       make(chan *fastConn),
		parkAfter:         defaultParkAfter,
	}
	if s.maxHeaderBytes <= 0 {
		s.maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	if s.idleTimeout <= 0 {
		s.idleTimeout = s.readHeaderTimeout
	}
	return s
}

// OpenConnections is how many client connections the server holds open
// now (parked ones and those handed to net/http included): what
// GuardOptions.MaxConnections caps. 0 before Serve.
func (s *Server) OpenConnections() int64 {
	if gl := s.open.Load(); gl != nil {
		return gl.open.Load()
	}
	return 0
}

// SetFastLane(false) hands every connection to the net/http lane
// (fast_lane = false, an escape hatch). Call it before Serve.
func (s *Server) SetFastLane(on bool) { s.handOffAll = !on }

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then, as http.Server does.
func (s *Server) Serve(ln net.Listener) error {
	gl := s.guard.Listener(ln)
	s.mu.Lock()
	if s.done.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = gl
	s.open.Store(gl.(*guardListener))
	s.handoff = newHandoffListener(ln.Addr())
	if s.parkAfter > 0 && !s.handOffAll {
		// Without epoll (a sandbox may forbid it), idle connections keep
		// their goroutines, as they did before parking.
		if p, err := newParker(); err == nil {
			s.parker = p
			s.wg.Add(1)
			go s.pollParked()
		}
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.fallback.Serve(s.handoff) // ends with ErrServerClosed on Shutdown or Close
	}()

	var backoff time.Duration
	for {
		c, err := gl.Accept()
		if err != nil {
			if s.done.Load() {
				return http.ErrServerClosed
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or the like: wait as net/http
				// does, rather than spin, and count it.
				s.h.Stats().AcceptFailed()
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		gc, ok := c.(*guardConn)
		if !ok { // cannot happen: the guard's listener returns guardConns
			c.Close()
			continue
		}
		fc := newFastConn(s, gc)
		s.mu.Lock()
		if s.done.Load() {
			s.mu.Unlock()
			gc.Close()
			return http.ErrServerClosed
		}
		s.conns[fc] = struct{}{}
		select {
		case s.idleWorkers <- fc:
		default:
			s.wg.Add(1)
			go s.work(fc)
		}
		s.mu.Unlock()
	}
}

// work serves fc, then the connections Serve gives it, until the server
// stops or enough other goroutines wait already.
func (s *Server) work(fc *fastConn) {
	defer s.wg.Done()
	for {
		fc.serve()
		if s.idleCount.Add(1) > maxIdleWorkers {
			s.idleCount.Add(-1)
			return
		}
		select {
		case fc = <-s.idleWorkers:
			s.idleCount.Add(-1)
		case <-s.stopped:
			s.idleCount.Add(-1)
			return
		}
	}
}

// forget drops a connection that ended or was handed off.
func (s *Server) forget(fc *fastConn) {
	s.mu.Lock()
	delete(s.conns, fc)
	s.mu.Unlock()
}

// Shutdown stops accepting, closes idle connections, lets requests in flight
// finish (their connections close after the response) and waits for them
// until ctx ends, as http.Server.Shutdown does; it returns ctx's error then.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	fallbackErr := make(chan error, 1)
	go func() { fallbackErr <- s.fallback.Shutdown(ctx) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for fc := range s.conns {
			fc.closeIfIdle()
		}
		left := len(s.conns) + s.parkedLocked() // the poller closes the parked
		s.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			<-fallbackErr
			return ctx.Err()
		case <-tick.C:
		}
	}
	err := <-fallbackErr
	s.wg.Wait()
	return err
}

// Close closes the listener and every connection at once (the poller closes
// the parked ones).
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	for fc := range s.conns {
		fc.gc.Close()
	}
	s.mu.Unlock()
	err := s.fallback.Close()
	s.wg.Wait()
	return err
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done.Swap(true) {
		return
	}
	close(s.stopped)
	if s.ln != nil {
		s.ln.Close()
	}
	if s.parker != nil {
		s.parker.wakePoller() // it closes the parked connections and ends
	}
}

// handoffListener is the fallback server's listener: the fast lane's
// goroutines give it the connections they hand over.
type handoffListener struct {
	addr      net.Addr
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// give hands c to the fallback server, or closes it when the server is
// closing.
func (l *handoffListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

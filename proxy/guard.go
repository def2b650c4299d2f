package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/proxy/wire"
)

// The connection guard sits between the data-plane listener and net/http.
//
// net/http resolves some ambiguous request framing silently before a handler
// runs: it drops a Content-Length sent together with Transfer-Encoding, it
// ignores Transfer-Encoding on HTTP/1.0, it merges identical duplicate
// Content-Length headers and unfolds obs-fold continuation lines. None of
// that reaches the handler, so the guard reads the request heads as they
// pass through the connection (without copying or buffering them) and
// records a verdict on the first head that an edge proxy must refuse; the
// handler, serving that same request, answers it with a 4xx and closes the
// connection (nginx ≥ 1.21.1 behaviour), so it is never forwarded.
//
// To know where each head starts, the guard follows the message framing the
// way net/http does (Content-Length bodies, chunked bodies and trailers).
// Once it is unsure (something net/http rejects anyway, or an upgraded
// connection) it stops looking and only keeps the connection's deadlines.
//
// It also carries the per-connection limits net/http lacks: a cap on
// accepted connections, an idle timeout while a request body is being read
// (a client that pauses mid-body, nginx's client_body_timeout) and an idle
// timeout on writes (a client that stops reading, nginx's send_timeout).

// GuardOptions configures a Guard. Zero values disable each limit.
type GuardOptions struct {
	MaxConnections   int           // accepted connections open at once; more wait in the kernel's backlog
	MaxHeaderCount   int           // header fields per request head; more are answered 431
	MaxHeaderBytes   int           // bytes per request head; more are answered 431 (NewServer sets it)
	ReadTimeout      time.Duration // longest pause while a request body is read
	WriteIdleTimeout time.Duration // longest a write to the client may block
}

// Guard wraps data-plane listeners. It is immutable and safe for concurrent
// use.
type Guard struct {
	opts GuardOptions
}

// NewGuard returns a Guard enforcing opts.
func NewGuard(opts GuardOptions) *Guard { return &Guard{opts: opts} }

// Listener wraps ln: connections it accepts are guarded, and at most
// MaxConnections are open at once (Accept waits for one to close, as
// HAProxy's maxconn does).
func (g *Guard) Listener(ln net.Listener) net.Listener {
	gl := &guardListener{Listener: ln, g: g, closed: make(chan struct{})}
	if g.opts.MaxConnections > 0 {
		gl.slots = make(chan struct{}, g.opts.MaxConnections)
	}
	return gl
}

type guardConnKey struct{}

// ConnContext is the http.Server.ConnContext of a server serving a guarded
// listener: it lets the handler find its connection's verdicts.
func (g *Guard) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if gc, ok := c.(*guardConn); ok {
		return context.WithValue(ctx, guardConnKey{}, gc)
	}
	return ctx
}

type guardListener struct {
	net.Listener
	g         *Guard
	slots     chan struct{} // nil: no cap
	open      atomic.Int64  // connections accepted and not closed yet
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *guardListener) Accept() (net.Conn, error) {
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	l.open.Add(1)
	return &guardConn{Conn: c, l: l, readTimeout: l.g.opts.ReadTimeout,
		writeIdle: l.g.opts.WriteIdleTimeout}, nil
}

func (l *guardListener) release() {
	if l.slots != nil {
		<-l.slots
	}
}

func (l *guardListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// guardConn is one accepted connection. Read and the deadline setters may
// run on different goroutines (net/http's background read); the tracker is
// only touched by Read, which net/http never calls concurrently.
type guardConn struct {
	net.Conn
	l           *guardListener
	readTimeout time.Duration
	writeIdle   time.Duration
	t           *wire.Tracker // made by the first Read (see tracker)

	served    atomic.Int64 // requests the handler has seen on this connection
	badSeq    atomic.Int64 // the first refused head's number (1-based); 0: none
	badReason atomic.Uint32

	mu         sync.Mutex
	serverDL   time.Time // the read deadline net/http asked for
	armed      bool      // a body read deadline is set instead of serverDL
	closeOnce  sync.Once
	noTracking atomic.Bool

	// prefix is what the fast lane had read and not served when it handed
	// the connection over: net/http reads it first.
	prefix []byte
}

// handOver prepares the connection for net/http after the fast lane served
// its earlier requests: buffered (a copy of the bytes read but not served,
// starting with a request head) is read first, and the guard judges heads
// from there on.
func (c *guardConn) handOver(buffered []byte) {
	c.prefix = append([]byte(nil), buffered...)
	c.t = nil // a fresh one from here
}

func (c *guardConn) Read(p []byte) (int, error) {
	tracking := !c.noTracking.Load()
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		if tracking {
			n = c.track(p[:n])
		}
		return n, nil
	}
	if tracking && c.readTimeout > 0 && c.tracker().InBody() {
		c.arm()
	}
	n, err := c.Conn.Read(p)
	if tracking && n > 0 {
		n = c.track(p[:n])
	}
	return n, err
}

// tracker returns the connection's framing tracker, made on first use: the
// fast lane reads the connection underneath, so a connection it serves to
// the end never needs one, and an idle (parked) connection keeps 256 bytes
// less.
func (c *guardConn) tracker() *wire.Tracker {
	if c.t == nil {
		c.t = &wire.Tracker{}
		if c.l != nil { // nil: made by hand, no caps
			c.t.MaxHeaders, c.t.MaxHeadBytes = c.l.g.opts.MaxHeaderCount, c.l.g.opts.MaxHeaderBytes
		}
	}
	return c.t
}

// track judges p and returns its length after the empty lines before a
// request line were dropped (RFC 9112 §2.2: a server SHOULD ignore them, as
// nginx does; net/http would refuse the request).
func (c *guardConn) track(p []byte) int {
	n, seq, reason := c.tracker().Scan(p)
	if reason != wire.RefuseNone {
		c.badReason.Store(uint32(reason))
		// seq is the refused head, or the request whose body could not
		// be judged (its own verdict may already have been given; the
		// heads after it are refused either way), or 0 before the first.
		c.badSeq.Store(max(seq, 1))
	}
	if c.armed && !c.t.InBody() {
		c.disarm()
	}
	return n
}

// arm sets the body read deadline: the sooner of net/http's own and now +
// ReadTimeout.
func (c *guardConn) arm() {
	c.mu.Lock()
	dl := time.Now().Add(c.readTimeout)
	if !c.serverDL.IsZero() && c.serverDL.Before(dl) {
		dl = c.serverDL
	}
	c.armed = true
	c.Conn.SetReadDeadline(dl)
	c.mu.Unlock()
}

func (c *guardConn) disarm() {
	c.mu.Lock()
	c.armed = false
	c.Conn.SetReadDeadline(c.serverDL)
	c.mu.Unlock()
}

func (c *guardConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.serverDL = t
	return c.Conn.SetReadDeadline(t)
}

func (c *guardConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.serverDL = t
	return c.Conn.SetDeadline(t)
}

func (c *guardConn) Write(p []byte) (int, error) {
	if c.writeIdle > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.writeIdle))
	}
	return c.Conn.Write(p)
}

func (c *guardConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.l.closedOne)
	return err
}

// closedOne counts an accepted connection closed and frees its slot.
func (l *guardListener) closedOne() {
	l.open.Add(-1)
	l.release()
}

// stopTracking is called when the connection is hijacked for an upgrade:
// what follows is no longer HTTP/1.
func (c *guardConn) stopTracking() {
	c.noTracking.Store(true)
	c.mu.Lock()
	if c.armed {
		c.armed = false
		c.Conn.SetReadDeadline(c.serverDL)
	}
	c.mu.Unlock()
}

// verdict returns the refusal reason of the request the handler is about to
// serve (net/http serves a connection's requests one after the other, so
// the n-th call belongs to the n-th head), or refuseNone. Every head after
// a refused one is refused too: the guard stopped following the framing
// there, so it cannot vouch for anything that follows.
func (c *guardConn) verdict() uint8 {
	n := c.served.Add(1)
	bad := c.badSeq.Load()
	switch {
	case bad == 0 && c.badReason.Load() == 0, n < bad:
		return wire.RefuseNone
	case n == bad:
		return uint8(c.badReason.Load())
	}
	return wire.RefuseUnjudged
}

func guardConnFrom(ctx context.Context) *guardConn {
	gc, _ := ctx.Value(guardConnKey{}).(*guardConn)
	return gc
}

// overTLS reports whether the client connection is a TLS one (a TLS
// listener's, handed to the fast lane and maybe on to net/http, which sets
// r.TLS only for a *tls.Conn it accepted itself).
func (c *guardConn) overTLS() bool {
	if c == nil {
		return false
	}
	_, ok := c.Conn.(*tls.Conn)
	return ok
}

// hijacked tells the guard, if any, that c now carries an upgraded protocol.
func hijacked(c net.Conn) {
	if gc, ok := c.(*guardConn); ok {
		gc.stopTracking()
	}
}

// CloseWrite half-closes the connection, so that net/http can send a FIN
// right after a final answer (Connection: close) while still draining what
// the client sends, instead of waiting before a full close.
func (c *guardConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/ferry-proxy/ferry/proxy/sock"
)

// connPool keeps the fast lane's idle keep-alive connections to one instance
// (address). It outlives tables: the Builder hands the same pool to every
// table's Upstream for that address, and closes it once the address leaves
// the service. Connections are reused last-in first-out, so that a quiet
// period lets the oldest ones reach idleConnTimeout and be closed. It is safe
// for concurrent use; the lock is the instance's own, held for a slice push
// or pop.
type Pool struct {
	addr string
	tls  *tls.Config // nil: cleartext; see tls.go

	mu     sync.Mutex
	idle   []*Conn // oldest first
	Closed bool
}

// upConn is one upstream connection owned by one exchange at a time.
type Conn struct {
	net.Conn
	Pool                        *Pool
	idleFrom                    time.Time
	ReadDeadline, WriteDeadline time.Time        // the deadlines armed (see deadline.go)
	sock.Peeker                                  // on the TCP socket, under TLS too
	tls                         *tlsState        // nil: cleartext; see tls.go
	wr                          sock.WriteReader // cleartext only
}

// WriteRead writes out and reads the first bytes of the answer into in,
// without the read that would find nothing right after the write (see
// sock.WriteReader). Under TLS it writes nothing (sent 0): the caller then
// writes and reads through the TLS connection.
func (c *Conn) WriteRead(out, in []byte) (sent, n int, err error) {
	return c.wr.WriteRead(out, in)
}

func NewPool(addr string) *Pool { return &Pool{addr: addr} }

// Get returns an idle connection, or nil when there is none.
func (p *Pool) Get(now time.Time) *Conn {
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleFrom) < idleConnTimeout {
			p.mu.Unlock()
			return c
		}
		// The newest is too old: so are the rest.
		stale := append([]*Conn{c}, p.idle...)
		clear(p.idle)
		p.idle = p.idle[:0]
		p.mu.Unlock()
		for _, s := range stale {
			s.Conn.Close()
		}
		return nil
	}
	p.mu.Unlock()
	return nil
}

// Put returns a connection whose last exchange ended cleanly.
func (p *Pool) Put(c *Conn, now time.Time) {
	c.idleFrom = now
	p.mu.Lock()
	if p.Closed || len(p.idle) >= maxIdleConnsPerHost {
		p.mu.Unlock()
		c.Conn.Close()
		return
	}
	var stale *Conn
	if len(p.idle) > 0 && now.Sub(p.idle[0].idleFrom) >= idleConnTimeout {
		stale = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	if stale != nil {
		stale.Conn.Close()
	}
}

// Dial opens a new connection within timeout (the TLS handshake included,
// for a TLS pool). Failures are *DialError.
func (p *Pool) Dial(ctx context.Context, timeout time.Duration) (*Conn, error) {
	if p.tls != nil {
		return p.dialTLS(ctx, timeout)
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: tcpKeepAlive}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	uc := &Conn{Conn: c, Pool: p}
	uc.Bind(c)
	uc.wr.Bind(c)
	return uc, nil
}

// CloseIdle closes the idle connections; with retire, the pool also closes
// every connection returned to it from now on.
func (p *Pool) CloseIdle(retire bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if retire {
		p.Closed = true
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.Conn.Close()
	}
}

// Alive reports whether an idle upstream connection is still open and
// quiet (bytes it was not asked for put it out of step).
func Alive(uc *Conn) bool { return uc.Peek() == sock.PeekQuiet }

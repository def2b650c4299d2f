package proxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// connPool keeps the fast lane's idle keep-alive connections to one instance
// (address). It outlives tables: the Builder hands the same pool to every
// table's Upstream for that address, and closes it once the address leaves
// the service. Connections are reused last-in first-out, so that a quiet
// period lets the oldest ones reach idleConnTimeout and be closed. It is safe
// for concurrent use; the lock is the instance's own, held for a slice push
// or pop.
type connPool struct {
	addr string

	mu     sync.Mutex
	idle   []*upConn // oldest first
	closed bool
}

// upConn is one upstream connection owned by one exchange at a time.
type upConn struct {
	net.Conn
	pool     *connPool
	idleFrom time.Time
	rdl, wdl time.Time // the deadlines armed (see deadline.go)
	peeker
}

func newConnPool(addr string) *connPool { return &connPool{addr: addr} }

// get returns an idle connection, or nil when there is none.
func (p *connPool) get(now time.Time) *upConn {
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
		stale := append([]*upConn{c}, p.idle...)
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

// put returns a connection whose last exchange ended cleanly.
func (p *connPool) put(c *upConn, now time.Time) {
	c.idleFrom = now
	p.mu.Lock()
	if p.closed || len(p.idle) >= maxIdleConnsPerHost {
		p.mu.Unlock()
		c.Conn.Close()
		return
	}
	var stale *upConn
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

// dial opens a new connection within timeout. Failures are *DialError.
func (p *connPool) dial(ctx context.Context, timeout time.Duration) (*upConn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: tcpKeepAlive}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	uc := &upConn{Conn: c, pool: p}
	uc.bind(c)
	return uc, nil
}

// closeIdle closes the idle connections; with retire, the pool also closes
// every connection returned to it from now on.
func (p *connPool) closeIdle(retire bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if retire {
		p.closed = true
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.Conn.Close()
	}
}

// alive reports whether an idle upstream connection is still open and
// quiet (bytes it was not asked for put it out of step).
func alive(uc *upConn) bool { return uc.peek() == peekQuiet }

package sock

import (
	"net"
	"syscall"
)

// PeekState is what a non-blocking peek at a connection found.
type PeekState uint8

const (
	PeekQuiet  PeekState = iota // open, nothing to read
	PeekData                    // bytes waiting
	PeekClosed                  // the peer closed or reset it
)

// Peeker looks at a connection's receive queue without blocking or
// consuming anything: one recvfrom(MSG_PEEK|MSG_DONTWAIT) on the socket,
// straight on its descriptor (taken once), so that a peek allocates nothing
// and touches neither the connection's deadlines nor its poller state (every
// reuse of a pooled upstream connection is checked with one). The
// connection must be open while it is peeked: its owner only peeks a
// connection it holds. Only the connection's owner uses it.
type Peeker struct {
	Fd int // -1: not a socket, always quiet
}

// Bind prepares p for c.
func (p *Peeker) Bind(c net.Conn) {
	p.Fd = -1
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { p.Fd = int(fd) })
		}
	}
}

// Peek reports the connection's state.
func (p *Peeker) Peek() PeekState {
	if p.Fd < 0 {
		return PeekQuiet
	}
	var b [1]byte
	n, err := RecvNoWait(p.Fd, b[:], syscall.MSG_PEEK)
	switch {
	case err == syscall.EAGAIN:
		return PeekQuiet
	case err == nil && n > 0:
		return PeekData
	}
	return PeekClosed
}

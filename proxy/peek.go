package proxy

import (
	"net"
	"syscall"
)

// peekState is what a non-blocking peek at a connection found.
type peekState uint8

const (
	peekQuiet  peekState = iota // open, nothing to read
	peekData                    // bytes waiting
	peekClosed                  // the peer closed or reset it
)

// peeker looks at a connection's receive queue without blocking or
// consuming anything: one recvfrom(MSG_PEEK|MSG_DONTWAIT) on the socket,
// straight on its descriptor (taken once), so that a peek allocates nothing
// and touches neither the connection's deadlines nor its poller state (every
// reuse of a pooled upstream connection is checked with one). The
// connection must be open while it is peeked: its owner only peeks a
// connection it holds. Only the connection's owner uses it.
type peeker struct {
	fd int // -1: not a socket, always quiet
}

// bind prepares p for c.
func (p *peeker) bind(c net.Conn) {
	p.fd = -1
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { p.fd = int(fd) })
		}
	}
}

// peek reports the connection's state.
func (p *peeker) peek() peekState {
	if p.fd < 0 {
		return peekQuiet
	}
	var b [1]byte
	n, _, err := syscall.Recvfrom(p.fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err == syscall.EINTR {
		n, _, err = syscall.Recvfrom(p.fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}
	switch {
	case err == syscall.EAGAIN:
		return peekQuiet
	case err == nil && n > 0:
		return peekData
	}
	return peekClosed
}

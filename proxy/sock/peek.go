package sock

import (
	"net"
	"syscall"
	"unsafe"
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
	n, err := peek(p.Fd, &b[0])
	if err == syscall.EINTR {
		n, err = peek(p.Fd, &b[0])
	}
	switch {
	case err == syscall.EAGAIN:
		return PeekQuiet
	case err == 0 && n > 0:
		return PeekData
	}
	return PeekClosed
}

// peek is recv(fd, b, 1, MSG_PEEK|MSG_DONTWAIT): with no address to fill
// in (recvfrom's) and, as it cannot block, without the scheduler's
// entersyscall/exitsyscall around it.
func peek(fd int, b *byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

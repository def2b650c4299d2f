package main

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
)

// connSlots caps a listener block's open client connections at
// limits.max_connections when its accept loop sorts connections (TLS, h2c,
// redirect_https): the loop takes a slot before each accept, so that beyond
// the cap new connections wait in the kernel's backlog (HAProxy's maxconn),
// and the connection gives it back when it is closed, whichever server
// closes it: the fast lane, the HTTP/2 server, the redirect server, or the
// sorting itself after a failed handshake. A connection counts from its
// accept, TLS handshake included, as in HAProxy. A plain block gives its
// connections straight to the fast lane, whose own guard counts them the
// same way (proxy.GuardOptions.MaxConnections); the two never both count one
// connection. nil: no cap.
type connSlots chan struct{}

func newConnSlots(max int) connSlots {
	if max <= 0 {
		return nil
	}
	return make(connSlots, max)
}

// take waits for a free slot; false when stop closed first.
func (s connSlots) take(stop <-chan struct{}) bool {
	if s == nil {
		return true
	}
	select {
	case s <- struct{}{}:
		return true
	case <-stop:
		return false
	}
}

// give returns a slot taken by take.
func (s connSlots) give() {
	if s != nil {
		<-s
	}
}

// InUse is the number of slots taken: connections open, handshakes
// included.
func (s connSlots) InUse() int { return len(s) }

// hold ties a slot taken for c to c's lifetime.
func (s connSlots) hold(c net.Conn) net.Conn {
	if s == nil {
		return c
	}
	return &slotConn{Conn: c, slots: s}
}

// slotConn gives its slot back on the first Close. It passes CloseWrite
// and SyscallConn through, so that what the servers do with a plain
// connection they still can.
type slotConn struct {
	net.Conn
	slots connSlots
	freed atomic.Bool
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	if c.freed.CompareAndSwap(false, true) {
		c.slots.give()
	}
	return err
}

func (c *slotConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *slotConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, syscall.EINVAL
}

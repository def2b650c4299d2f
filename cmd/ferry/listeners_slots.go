package main

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
)

// connSlots counts a listener block's open client connections when its
// accept loop sorts them (TLS, h2c, redirect_https), and caps them at
// limits.max_connections: the loop takes a slot before each accept, so that
// beyond the cap new connections wait in the kernel's backlog (HAProxy's
// maxconn), and the connection gives it back when it is closed, whichever
// server closes it: the fast lane, the HTTP/2 server, the redirect server,
// or the sorting itself after a failed handshake. A connection counts from
// its accept, TLS handshake included, as in HAProxy. A plain block gives its
// connections straight to the fast lane, whose own guard counts and caps
// them the same way (proxy.GuardOptions.MaxConnections); the two never both
// count one connection.
type connSlots struct {
	cap  chan struct{} // nil: no cap
	open atomic.Int64
}

// newConnSlots counts connections, capped at max when max > 0.
func newConnSlots(max int) *connSlots {
	s := &connSlots{}
	if max > 0 {
		s.cap = make(chan struct{}, max)
	}
	return s
}

// take waits for a free slot; false when stop closed first.
func (s *connSlots) take(stop <-chan struct{}) bool {
	if s.cap == nil {
		return true
	}
	select {
	case s.cap <- struct{}{}:
		return true
	case <-stop:
		return false
	}
}

// give returns a slot taken by take for a connection that was not
// accepted.
func (s *connSlots) give() {
	if s.cap != nil {
		<-s.cap
	}
}

// Open is the number of connections accepted and not closed yet,
// handshakes included.
func (s *connSlots) Open() int64 { return s.open.Load() }

// hold ties the slot taken for an accepted c to c's lifetime.
func (s *connSlots) hold(c net.Conn) net.Conn {
	s.open.Add(1)
	return &slotConn{Conn: c, slots: s}
}

// slotConn gives its slot back on the first Close. It passes CloseWrite
// and SyscallConn through, so that what the servers do with a plain
// connection they still can.
type slotConn struct {
	net.Conn
	slots *connSlots
	freed atomic.Bool
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	if c.freed.CompareAndSwap(false, true) {
		c.slots.open.Add(-1)
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

package consultest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Partition is a TCP relay in front of an address (an agent's HTTP API) that
// can be cut the way a network partition or a disconnected container network
// cuts a path: silently. Once cut, connections stay open but nothing passes
// either way, and new connections are accepted and never answered, so a
// client without a deadline waits until TCP gives up (minutes), not for a
// refusal. Tests point a client at Addr instead of the agent.
type Partition struct {
	// Addr is the relay's address (127.0.0.1:port).
	Addr string

	target string
	ln     net.Listener
	cut    atomic.Bool
	wg     sync.WaitGroup // the accept loop and every relay goroutine

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{} // both ends of every relayed connection
}

// NewPartition starts a relay to target, closed when the test ends.
func NewPartition(tb testing.TB, target string) *Partition {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Partition{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Cut stops everything from passing, from now on and for good.
func (p *Partition) Cut() { p.cut.Store(true) }

// Close closes the relay and every connection through it, and waits for its
// goroutines.
func (p *Partition) Close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track records c so that Close closes it; false when already closed.
func (p *Partition) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Partition) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.relay(c)
	}
}

// relay joins a client connection to the target while the path is whole;
// a connection accepted after the cut is read from and never answered.
func (p *Partition) relay(client net.Conn) {
	defer p.wg.Done()
	if p.cut.Load() {
		io.Copy(io.Discard, client)
		return
	}
	upstream, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(upstream) {
		client.Close()
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pipe(upstream, client)
	}()
	p.pipe(client, upstream)
}

// pipe copies src to dst until src ends, dropping what it reads once the
// path is cut; then it closes both.
func (p *Partition) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

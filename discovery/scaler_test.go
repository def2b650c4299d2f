package discovery

import (
	"context"
	"testing"
)

// TestScalerQueue: reads named by changes go before sweeps, a service is
// queued once, moves up from the backlog when a change names it, and is
// read again after a read in progress when named meanwhile.
func TestScalerQueue(t *testing.T) {
	m := New(Options{})
	for _, n := range []string{"a", "b", "c", "d"} {
		m.watchers[n] = &watcher{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &scaler{m: m, ctx: ctx, queued: make(map[string]queueKind), busy: make(map[string]bool),
		redo: make(map[string]queueKind), wake: make(chan struct{}, 1)}
	s.push(queuedBacklog, []string{"a", "b", "c"})
	s.enqueue("d", "c", "d") // c moves up; d once
	var order []string
	for range 4 {
		n, ok := s.take()
		if !ok {
			t.Fatal("take: no service")
		}
		order = append(order, n)
		if n == "a" && len(order) == 3 {
			s.enqueue("a") // named while being read: read again after
		}
		s.done(n, false, 0)
	}
	if got := order; got[0] != "d" || got[1] != "c" || got[2] != "a" || got[3] != "a" {
		t.Errorf("read order %v, want [d c a a] (b after)", got)
	}
	if n, ok := s.take(); !ok || n != "b" {
		t.Errorf("last read %q, want b", n)
	}
	s.done("b", false, 0)
	s.mu.Lock()
	n, more := s.pop() // the backlog's stale "c" is skipped
	left := len(s.queued)
	s.mu.Unlock()
	if more || left != 0 {
		t.Errorf("queue not empty: popped %q, %d queued", n, left)
	}
}

package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
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
		n, kind, ok := s.take()
		if !ok {
			t.Fatal("take: no service")
		}
		order = append(order, n)
		if want := map[bool]queueKind{true: queuedUrgent, false: queuedBacklog}[n != "a" || len(order) == 4]; kind != want {
			t.Errorf("read %d (%s) from queue %d, want %d", len(order), n, kind, want)
		}
		if n == "a" && len(order) == 3 {
			s.enqueue("a") // named while being read: read again after
		}
		s.done(n, false, 0)
	}
	if got := order; got[0] != "d" || got[1] != "c" || got[2] != "a" || got[3] != "a" {
		t.Errorf("read order %v, want [d c a a] (b after)", got)
	}
	if n, kind, ok := s.take(); !ok || n != "b" || kind != queuedBacklog {
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

// idleCluster is a ClusterClient whose queries answer at once with index 1
// when not blocking, and otherwise block until their context is done, as a
// cluster where nothing changes.
type idleCluster struct{}

func (idleCluster) Checks(q *api.QueryOptions) ([]CheckState, *api.QueryMeta, error) {
	if q.WaitIndex > 0 {
		<-q.Context().Done()
		return nil, nil, q.Context().Err()
	}
	return nil, &api.QueryMeta{LastIndex: 1, KnownLeader: true}, nil
}

func (idleCluster) Services(q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
	if q.WaitIndex > 0 {
		<-q.Context().Done()
		return nil, nil, q.Context().Err()
	}
	return map[string][]string{"web": nil}, &api.QueryMeta{LastIndex: 1, KnownLeader: true}, nil
}

// TestScaledReadsFromLeader: with allow_stale, a read the detector asks for
// (here the first) goes to the leader, since a stale read could miss the
// change the detector saw; a sweep's reads stay stale.
func TestScaledReadsFromLeader(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs after the manager stops
	f := newFakeHealth()
	m := newTestManager(t, f, Options{AllowStale: true, Cluster: idleCluster{}, MaxWatchConnections: 4},
		Watch{Service: "web"}, Watch{Service: "api"}, Watch{Service: "db"})
	if !m.Scaled() {
		t.Fatal("3 services under a budget of 4: want scaled mode")
	}
	stop := run(t, m)
	defer stop()
	// One fetcher under this budget: answer the calls in the order it makes them.
	read := func(what string, stale bool) {
		t.Helper()
		for range 3 {
			c := nextOf(t, f, "web", "api", "db")
			if c.opts.AllowStale != stale || c.opts.WaitIndex != 0 {
				t.Errorf("%s of %s: stale %v, index %d; want a plain read, stale %v", what, c.service, c.opts.AllowStale, c.opts.WaitIndex, stale)
			}
			c.ok(5)
		}
	}
	read("first read", false)
	m.mu.Lock()
	s := m.scaler
	m.mu.Unlock()
	s.enqueueAll() // as a sweep does
	read("sweep read", true)
}

// nextOf returns the next call for any of services, failing after 5s.
func nextOf(t *testing.T, f *fakeHealth, services ...string) *fakeCall {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, svc := range services {
			select {
			case c := <-f.ch(svc):
				return c
			default:
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no query for any of %v within 5s", services)
	return nil
}

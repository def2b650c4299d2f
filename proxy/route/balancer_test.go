package route

import (
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
)

// fakeState is an InstanceState whose availability and load a test sets.
type fakeState struct {
	down     atomic.Bool
	inflight atomic.Int64
}

func (s *fakeState) Acquire()                                            { s.inflight.Add(1) }
func (s *fakeState) Release()                                            { s.inflight.Add(-1) }
func (s *fakeState) InFlight() int64                                     { return s.inflight.Load() }
func (s *fakeState) Available() bool                                     { return !s.down.Load() }
func (s *fakeState) Report(health.Outcome, health.Outlier) time.Duration { return 0 }

// fakeUpstreams returns n upstreams with fake states and the given weights
// (1 when weights is shorter).
func fakeUpstreams(n int, weights ...int) ([]*Upstream, []*fakeState) {
	ups := make([]*Upstream, n)
	states := make([]*fakeState, n)
	for i := range ups {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		states[i] = &fakeState{}
		ups[i] = &Upstream{
			instance: discovery.Instance{ID: fmt.Sprint(i), Address: "10.0.0.1", Port: 9000 + i, Weight: w},
			addr:     fmt.Sprintf("10.0.0.1:%d", 9000+i),
			Health:   states[i],
		}
	}
	return ups, states
}

func newTestBalancer(t testing.TB, policy string, ups []*Upstream) balancer {
	t.Helper()
	b, ok := NewBalancer(policy, ups, new(atomic.Uint64))
	if !ok {
		t.Fatalf("unknown policy %q", policy)
	}
	return b
}

// counts picks n times and counts the picks per upstream index.
func counts(t *testing.T, b balancer, ups []*Upstream, n int) []int {
	t.Helper()
	idx := make(map[*Upstream]int)
	for i, u := range ups {
		idx[u] = i
	}
	c := make([]int, len(ups))
	for range n {
		u := b.Pick(ups, nil)
		if u == nil {
			t.Fatal("pick returned nil with instances available")
		}
		c[idx[u]]++
	}
	return c
}

func TestRoundRobinEven(t *testing.T) {
	ups, _ := fakeUpstreams(3)
	b := newTestBalancer(t, balanceRoundRobin, ups)
	// In order, not merely even in total.
	for i := range 9 {
		if got := b.Pick(ups, nil); got != ups[i%3] {
			t.Fatalf("pick %d: got %s, want %s", i, got.addr, ups[i%3].addr)
		}
	}
	if c := counts(t, b, ups, 3000); c[0] != 1000 || c[1] != 1000 || c[2] != 1000 {
		t.Fatalf("got %v, want 1000 each", c)
	}
}

func TestWeightedFollowsWeights(t *testing.T) {
	ups, _ := fakeUpstreams(3, 1, 2, 7)
	b := newTestBalancer(t, balanceWeighted, ups)
	const n = 100000
	c := counts(t, b, ups, n)
	for i, w := range []float64{0.1, 0.2, 0.7} {
		if got := float64(c[i]) / n; math.Abs(got-w) > 0.015 {
			t.Errorf("instance %d: got share %.3f, want %.2f (counts %v)", i, got, w, c)
		}
	}
}

func TestWeightedSkipsUnavailableProportionally(t *testing.T) {
	ups, st := fakeUpstreams(3, 1, 3, 6)
	st[2].down.Store(true)
	b := newTestBalancer(t, balanceWeighted, ups)
	const n = 100000
	c := counts(t, b, ups, n)
	if c[2] != 0 {
		t.Fatalf("unavailable instance picked %d times", c[2])
	}
	if got := float64(c[0]) / n; math.Abs(got-0.25) > 0.015 {
		t.Errorf("instance 0: got share %.3f, want 0.25 (counts %v)", got, c)
	}
}

func TestRandomCoversAll(t *testing.T) {
	ups, _ := fakeUpstreams(5)
	b := newTestBalancer(t, balanceRandom, ups)
	const n = 50000
	c := counts(t, b, ups, n)
	for i, k := range c {
		if got := float64(k) / n; math.Abs(got-0.2) > 0.02 {
			t.Errorf("instance %d: got share %.3f, want 0.2 (counts %v)", i, got, c)
		}
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	ups, st := fakeUpstreams(2)
	st[0].inflight.Store(10)
	b := newTestBalancer(t, balanceLeastRequest, ups)
	if c := counts(t, b, ups, 1000); c[0] != 0 {
		t.Fatalf("busy instance picked %d of 1000 times, want 0 (counts %v)", c[0], c)
	}

	// With three, the busiest is never picked (two distinct draws always
	// include a less loaded one) and the idle one takes most.
	ups, st = fakeUpstreams(3)
	st[0].inflight.Store(10)
	st[1].inflight.Store(5)
	b = newTestBalancer(t, balanceLeastRequest, ups)
	c := counts(t, b, ups, 3000)
	if c[0] != 0 || c[2] < c[1] {
		t.Fatalf("got %v, want none for the busiest and most for the idle one", c)
	}
}

func TestPickAvoidsPrevious(t *testing.T) {
	for _, p := range Policies {
		t.Run(p, func(t *testing.T) {
			ups, _ := fakeUpstreams(3)
			b := newTestBalancer(t, p, ups)
			for i := range 300 {
				prev := ups[i%3]
				if got := b.Pick(ups, prev); got == prev || got == nil {
					t.Fatalf("pick avoiding %s: got %v", prev.addr, got)
				}
			}
			// The only instance is still picked when it is the previous one.
			one := ups[:1]
			b = newTestBalancer(t, p, one)
			if got := b.Pick(one, one[0]); got != one[0] {
				t.Fatalf("single instance: got %v, want it", got)
			}
		})
	}
}

func TestPickSkipsUnavailable(t *testing.T) {
	for _, p := range Policies {
		t.Run(p, func(t *testing.T) {
			ups, st := fakeUpstreams(4)
			st[0].down.Store(true)
			st[2].down.Store(true)
			b := newTestBalancer(t, p, ups)
			for range 400 {
				if got := b.Pick(ups, nil); got != ups[1] && got != ups[3] {
					t.Fatalf("picked %v, want an available one", got)
				}
			}
			// Avoiding one of the two available leaves the other.
			for range 100 {
				if got := b.Pick(ups, ups[1]); got != ups[3] {
					t.Fatalf("picked %v, want %s", got, ups[3].addr)
				}
			}
			// Nothing available: nil, even when asked to avoid a down one.
			st[1].down.Store(true)
			st[3].down.Store(true)
			if got := b.Pick(ups, ups[1]); got != nil {
				t.Fatalf("all down: picked %s, want nil", got.addr)
			}
			if got := b.Pick(nil, nil); got != nil {
				t.Fatalf("no instances: picked %s, want nil", got.addr)
			}
		})
	}
}

func TestPickNoAlloc(t *testing.T) {
	ups, st := fakeUpstreams(4, 1, 2, 3, 4)
	st[1].down.Store(true)
	for _, p := range Policies {
		b := newTestBalancer(t, p, ups)
		allocs := testing.AllocsPerRun(200, func() {
			b.Pick(ups, nil)
			b.Pick(ups, ups[0])
		})
		if allocs != 0 {
			t.Errorf("%s: got %v allocs per pick, want 0", p, allocs)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	var b retryBudget
	for range 10 {
		b.BeginRequest()
	}
	// 10 in flight: 20% is 2, the floor is 3.
	got := 0
	for b.TryRetry() {
		got++
	}
	if got != 3 {
		t.Fatalf("10 requests in flight: got %d retries, want 3", got)
	}
	for range 90 {
		b.BeginRequest()
	}
	for b.TryRetry() {
		got++
	}
	if got != 20 {
		t.Fatalf("100 requests in flight: got %d retries, want 20", got)
	}
	if d := b.denied.Load(); d != 2 {
		t.Errorf("denied retries: got %d, want 2 (one refusal ending each loop)", d)
	}
	b.EndRequest(20)
	if !b.TryRetry() {
		t.Fatal("retries returned, but no retry allowed")
	}
}

// BenchmarkPick measures each policy over real health states, as tables use.
func BenchmarkPick(b *testing.B) {
	reg := health.NewRegistry()
	ups := make([]*Upstream, 8)
	for i := range ups {
		inst := discovery.Instance{ID: fmt.Sprint(i), Node: "n", Address: "10.0.0.1", Port: 9000 + i, Weight: i + 1}
		ups[i] = &Upstream{instance: inst, addr: inst.HostPort(), Health: reg.State("svc", inst.Key())}
	}
	for _, p := range Policies {
		bal, _ := NewBalancer(p, ups, new(atomic.Uint64))
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if bal.Pick(ups, nil) == nil {
						b.Fatal("nil pick")
					}
				}
			})
		})
	}
}

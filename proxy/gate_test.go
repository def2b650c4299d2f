package proxy

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
)

// TestQueueAbsorbsBurst: a burst beyond max_requests waits for a slot
// instead of failing; beyond max_pending_requests, or past queue_timeout,
// it is answered 503 with Retry-After. Both lanes.
func TestQueueAbsorbsBurst(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		maxPending               int
		timeout, work            time.Duration
		burst                    int
		ok, overflow, timeout503 int
	}{
		{"queued", 20, 5 * time.Second, 100 * time.Millisecond, 8, 8, 0, 0},
		{"queue full", 1, 5 * time.Second, time.Second, 6, 3, 3, 0},
		{"queue timeout", 20, 100 * time.Millisecond, time.Second, 4, 2, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, "text")
			be := backend(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(tc.work) })
			f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
				map[string]route.ServiceSpec{"s": {MaxRequests: 2, MaxPendingRequests: tc.maxPending, QueueTimeout: tc.timeout}},
				setOf(t, "s", addr(be)))
			var mu sync.Mutex
			codes := map[int]int{}
			var wg sync.WaitGroup
			for range tc.burst {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := f.front.Client().Get(f.front.URL + "/x")
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
						t.Error("503 without Retry-After")
					}
					mu.Lock()
					codes[resp.StatusCode]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if codes[200] != tc.ok || codes[503] != tc.overflow+tc.timeout503 {
				t.Errorf("got %v, want %d × 200 and %d × 503", codes, tc.ok, tc.overflow+tc.timeout503)
			}
			st := f.handler.Table().Service("s").Stats()
			if got := st.QueueOverflows(); got != uint64(tc.overflow) {
				t.Errorf("overflows: got %d, want %d", got, tc.overflow)
			}
			if got := st.QueueTimeouts(); got != uint64(tc.timeout503) {
				t.Errorf("queue timeouts: got %d, want %d", got, tc.timeout503)
			}
			if tc.name == "queued" && (st.Queued() == 0 || st.QueueWait() <= 0) {
				t.Errorf("queued %d, waited %v: want both counted", st.Queued(), st.QueueWait())
			}
			if n := f.handler.Table().Service("s").Queued(); n != 0 {
				t.Errorf("still queued: %d", n)
			}
		})
	}
}

// TestGateLeaveFreesASlotForAWaiter: slots go to waiters in turn, and a
// gate without max_requests admits everything.
func TestGateLeaveFreesASlotForAWaiter(t *testing.T) {
	g := route.NewGate(1, 1, time.Second, &route.ServiceStats{})
	if g.Enter(nil) != route.GateIn {
		t.Fatal("first enter refused")
	}
	got := make(chan route.GateVerdict)
	go func() { got <- g.Enter(nil) }()
	for g.Waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	if v := g.Enter(nil); v != route.GateFull {
		t.Errorf("third enter with a full queue: got %d, want gateFull", v)
	}
	g.Leave()
	if v := <-got; v != route.GateIn {
		t.Errorf("the waiter got %d, want gateIn", v)
	}
	g.Leave()
	var none *route.Gate
	if none.Enter(nil) != route.GateIn || route.NewGate(0, 0, time.Second, nil).Enter(nil) != route.GateIn {
		t.Error("no max_requests must admit everything")
	}
}

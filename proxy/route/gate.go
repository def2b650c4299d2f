package route

import (
	"sync/atomic"
	"time"
)

// Gate admits a service's requests: at most max at once (max_requests,
// Envoy's circuit breaker), and a burst beyond that waits in a bounded queue
// (max_pending_requests) for at most the queue timeout, as Envoy's pending
// requests and HAProxy's `timeout queue` do, instead of failing at once.
//
// Entering and leaving cost one atomic add each while a slot is free. A
// waiter registers, checks once more, and sleeps on wake; a leave drops a
// token there (at most max are kept, extra ones are spurious wake-ups the
// waiter checks away). Blocked waiters are woken in arrival order (a
// channel's receivers queue FIFO). A gate is long-lived (kept across tables
// while the service's limits stay) and safe for concurrent use.
type Gate struct {
	max        int64 // 0: no max_requests
	maxPending int64
	timeout    time.Duration
	inUse      atomic.Int64
	waiting    atomic.Int64
	wake       chan struct{}
	stats      *ServiceStats
}

func NewGate(maxRequests, maxPending int, timeout time.Duration, stats *ServiceStats) *Gate {
	g := &Gate{max: int64(maxRequests), maxPending: int64(maxPending), timeout: timeout, stats: stats}
	if maxRequests > 0 {
		g.wake = make(chan struct{}, maxRequests)
	}
	return g
}

// GateVerdict is how entering went.
type GateVerdict uint8

const (
	GateIn       GateVerdict = iota // a slot is held: leave when done
	GateFull                        // no slot and the queue is full
	GateTimedOut                    // waited the queue timeout
	GateGone                        // the client left while waiting
)

// take claims a slot if one is free.
func (g *Gate) take() bool {
	if g.inUse.Add(1) <= g.max {
		return true
	}
	g.inUse.Add(-1)
	return false
}

// Enter takes a slot, waiting in the queue when none is free. done, when
// not nil, ends the wait early (the client left). Taking a free slot
// allocates nothing.
func (g *Gate) Enter(done <-chan struct{}) GateVerdict {
	if g == nil || g.max == 0 || g.take() {
		return GateIn
	}
	if g.waiting.Add(1) > g.maxPending {
		g.waiting.Add(-1)
		g.stats.count(&g.stats.queueOverflows)
		return GateFull
	}
	start := time.Now()
	timer := time.NewTimer(g.timeout)
	v := GateIn
wait:
	for !g.take() {
		select {
		case <-g.wake:
		case <-timer.C:
			v = GateTimedOut
			break wait
		case <-done:
			v = GateGone
			break wait
		}
	}
	timer.Stop()
	g.waiting.Add(-1)
	if s := g.stats; s != nil {
		s.queued.Add(1)
		s.queueNanos.Add(uint64(time.Since(start)))
		if v == GateTimedOut {
			s.queueTimeouts.Add(1)
		}
	}
	return v
}

// Leave gives back a slot taken by enter, waking a waiter if any.
func (g *Gate) Leave() {
	if g == nil || g.max == 0 {
		return
	}
	g.inUse.Add(-1)
	if g.waiting.Load() > 0 {
		select {
		case g.wake <- struct{}{}:
		default: // enough tokens already
		}
	}
}

// Waiting is how many requests wait in the queue now.
func (g *Gate) Waiting() int64 {
	if g == nil {
		return 0
	}
	return g.waiting.Load()
}

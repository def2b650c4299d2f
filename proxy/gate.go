package proxy

import (
	"sync/atomic"
	"time"
)

// gate admits a service's requests: at most max at once (max_requests,
// Envoy's circuit breaker), and a burst beyond that waits in a bounded queue
// (max_pending_requests) for at most the queue timeout, as Envoy's pending
// requests and HAProxy's `timeout queue` do, instead of failing at once.
//
// Slots are a buffered channel: entering is one non-blocking send, leaving
// one receive, and waiters are served in arrival order (a channel's blocked
// senders queue FIFO). A gate is long-lived (kept across tables while the
// service's max_requests stays) and safe for concurrent use.
type gate struct {
	slots      chan struct{} // nil: no max_requests
	maxPending int64
	timeout    time.Duration
	waiting    atomic.Int64
	stats      *ServiceStats
}

func newGate(maxRequests, maxPending int, timeout time.Duration, stats *ServiceStats) *gate {
	g := &gate{maxPending: int64(maxPending), timeout: timeout, stats: stats}
	if maxRequests > 0 {
		g.slots = make(chan struct{}, maxRequests)
	}
	return g
}

// gateVerdict is how entering went.
type gateVerdict uint8

const (
	gateIn       gateVerdict = iota // a slot is held: leave when done
	gateFull                        // no slot and the queue is full
	gateTimedOut                    // waited the queue timeout
	gateGone                        // the client left while waiting
)

// enter takes a slot, waiting in the queue when none is free. done, when
// not nil, ends the wait early (the client left). Taking a free slot
// allocates nothing.
func (g *gate) enter(done <-chan struct{}) gateVerdict {
	if g == nil || g.slots == nil {
		return gateIn
	}
	select {
	case g.slots <- struct{}{}:
		return gateIn
	default:
	}
	if g.waiting.Add(1) > g.maxPending {
		g.waiting.Add(-1)
		g.stats.count(&g.stats.queueOverflows)
		return gateFull
	}
	start := time.Now()
	timer := time.NewTimer(g.timeout)
	v := gateIn
	select {
	case g.slots <- struct{}{}:
	case <-timer.C:
		v = gateTimedOut
	case <-done:
		v = gateGone
	}
	timer.Stop()
	g.waiting.Add(-1)
	if s := g.stats; s != nil {
		s.queued.Add(1)
		s.queueNanos.Add(uint64(time.Since(start)))
		if v == gateTimedOut {
			s.queueTimeouts.Add(1)
		}
	}
	return v
}

// leave gives back a slot taken by enter.
func (g *gate) leave() {
	if g != nil && g.slots != nil {
		<-g.slots
	}
}

// Waiting is how many requests wait in the queue now.
func (g *gate) Waiting() int64 {
	if g == nil {
		return 0
	}
	return g.waiting.Load()
}

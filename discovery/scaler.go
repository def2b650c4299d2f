package discovery

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// scaler drives the watchers in scaled mode, when there are more services
// than per-service blocking queries allow (Options.MaxWatchConnections):
//
//   - a change detector holds two cluster-wide blocking queries — every
//     check (/v1/health/state/any) and the service catalog
//     (/v1/catalog/services) — and diffs each answer against the last one
//     to name the services that changed (detector.go);
//   - fetchers, at most fetchConcurrency at once, re-read only those
//     services with plain reads and run the answers through the same
//     watcher state machine as per-service mode (fail static, index rules,
//     failover);
//   - a catalog change the diffs cannot attribute (an instance re-registered
//     in place without checks) queues a sweep of every service, at most one
//     per sweepMinInterval; a periodic resync (resyncEvery) does the same as
//     a safety net, and so does the detector's recovery from an error.
//
// So Consul sees 2 + fetchConcurrency connections from ferry whatever the
// number of services, and each change costs one read per changed service.
type scaler struct {
	m      *Manager
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	urgent  []string             // services named by the detector, in order; guarded by mu
	backlog []string             // services of sweeps and resyncs, read when urgent is empty; guarded by mu
	queued  map[string]queueKind // where each queued service waits; guarded by mu
	busy    map[string]bool      // being read; guarded by mu
	redo    map[string]queueKind // queued again while busy; guarded by mu
	retryAt map[string]time.Time // services to read again at a time (errors, failover); guarded by mu
	wake    chan struct{}        // capacity 1: the queue grew

	lastSweep time.Time // guarded by mu
	sweepAt   time.Time // a held sweep's time, zero when none; guarded by mu
}

// Scaled-mode pacing; tests shrink them through Manager.timing's siblings.
var (
	fetchConcurrency = 8
	sweepMinInterval = time.Second
	resyncEvery      = 5 * time.Minute
	retryTick        = 100 * time.Millisecond
)

// fetchers is how many plain reads run at once under a connection budget:
// the detector's two long-polls and one connection for registration stay
// out of it.
func fetchers(budget int) int { return max(1, min(fetchConcurrency, budget-3)) }

// startScalerLocked starts a scaler for the current watchers. m.mu must be held and m.runCtx non-nil.
func (m *Manager) startScalerLocked() {
	ctx, cancel := context.WithCancel(m.runCtx)
	s := &scaler{
		m: m, ctx: ctx, cancel: cancel,
		queued: make(map[string]queueKind), busy: make(map[string]bool), redo: make(map[string]queueKind),
		retryAt: make(map[string]time.Time), wake: make(chan struct{}, 1),
	}
	m.scaler = s
	d := newDetector(s) // queues every service once its queries have answered
	spawn := func(f func()) {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			f()
		}()
	}
	for range fetchers(m.opts.MaxWatchConnections) {
		spawn(s.fetchLoop)
	}
	spawn(s.retryLoop)
	spawn(func() { d.runChecks(ctx) })
	spawn(func() { d.runCatalog(ctx) })
}

// queueKind is which queue a service waits in.
type queueKind int8

const (
	notQueued queueKind = iota
	queuedUrgent
	queuedBacklog
)

// enqueue queues services named by a change for a read, ahead of any sweep:
// one already queued keeps its place (moving up from the backlog), one being
// read is read again after.
func (s *scaler) enqueue(names ...string) { s.push(queuedUrgent, names) }

// enqueueAll queues every watched service in the backlog (a sweep or a
// resync), behind the reads changes ask for.
func (s *scaler) enqueueAll() {
	s.m.mu.Lock()
	names := make([]string, 0, len(s.m.watchers))
	for n := range s.m.watchers {
		names = append(names, n)
	}
	s.m.mu.Unlock()
	s.push(queuedBacklog, names)
}

func (s *scaler) push(kind queueKind, names []string) {
	if len(names) == 0 {
		return
	}
	s.mu.Lock()
	for _, n := range names {
		switch {
		case s.busy[n]:
			if r := s.redo[n]; r == notQueued || kind < r {
				s.redo[n] = kind
			}
		case s.queued[n] == notQueued || (kind == queuedUrgent && s.queued[n] == queuedBacklog):
			// A backlog entry left behind is skipped when its turn comes.
			s.queued[n] = kind
			if kind == queuedUrgent {
				s.urgent = append(s.urgent, n)
			} else {
				s.backlog = append(s.backlog, n)
			}
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pop takes the next service from the urgent queue, else the backlog. s.mu
// must be held.
func (s *scaler) pop() (string, bool) {
	if n, ok := s.popFrom(&s.urgent, queuedUrgent); ok {
		return n, true
	}
	return s.popFrom(&s.backlog, queuedBacklog)
}

// popFrom takes the first entry of q still queued as kind, dropping the
// entries left behind by a move to the urgent queue. s.mu must be held.
func (s *scaler) popFrom(q *[]string, kind queueKind) (string, bool) {
	for len(*q) > 0 {
		n := (*q)[0]
		(*q)[0] = ""
		*q = (*q)[1:]
		if s.queued[n] == kind {
			return n, true
		}
	}
	return "", false
}

// take returns the next service to read and the queue it came from,
// waiting for one; false when ctx is done.
func (s *scaler) take() (string, queueKind, bool) {
	for {
		s.mu.Lock()
		if n, ok := s.pop(); ok {
			kind := s.queued[n]
			delete(s.queued, n)
			s.busy[n] = true
			more := len(s.urgent)+len(s.backlog) > 0
			s.mu.Unlock()
			if more { // pass the wake-up on to another fetcher
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
			return n, kind, true
		}
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return "", notQueued, false
		case <-s.wake:
		}
	}
}

// done ends a read of name: a read queued meanwhile goes back in the queue,
// and again schedules one after delay.
func (s *scaler) done(name string, again bool, delay time.Duration) {
	s.mu.Lock()
	delete(s.busy, name)
	redo := s.redo[name]
	delete(s.redo, name)
	if again {
		s.retryAt[name] = time.Now().Add(delay)
	} else {
		delete(s.retryAt, name)
	}
	s.mu.Unlock()
	if redo != notQueued {
		s.push(redo, []string{name})
	}
}

// fetchLoop reads queued services one at a time until ctx is done.
func (s *scaler) fetchLoop() {
	for {
		name, kind, ok := s.take()
		if !ok {
			return
		}
		s.m.mu.Lock()
		w := s.m.watchers[name]
		s.m.mu.Unlock()
		if w == nil { // no longer watched
			s.done(name, false, 0)
			continue
		}
		// A read asked for by a change (or a first read, or a retry) goes
		// to the leader even with allow_stale: the detector may have seen
		// the change on a server ahead of the one a stale read would reach,
		// and a plain read, unlike a blocking query, would not wait for it
		// there; the change would then be missed until the next resync.
		// Sweeps and resyncs, which nothing in particular asked for, stay
		// stale reads, lighter on the leader.
		delay, again, stopped := w.query(s.ctx, false, kind == queuedUrgent)
		if stopped {
			return
		}
		if again && w.set != nil && w.set.FailedOver {
			delay = failoverRefresh
		}
		s.done(name, again, delay)
	}
}

// retryLoop queues the services whose retry time has come, and a periodic
// resync of every service.
func (s *scaler) retryLoop() {
	tick := time.NewTicker(retryTick)
	defer tick.Stop()
	resync := time.NewTimer(jitter(resyncEvery, rand.Float64()))
	defer resync.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-resync.C:
			s.m.log.Debug("periodic resync of every service")
			s.enqueueAll()
			resync.Reset(jitter(resyncEvery, rand.Float64()))
		case now := <-tick.C:
			var due []string
			s.mu.Lock()
			sweep := !s.sweepAt.IsZero() && !now.Before(s.sweepAt)
			if sweep {
				s.sweepAt, s.lastSweep = time.Time{}, now
			}
			for n, at := range s.retryAt {
				if !now.Before(at) {
					due = append(due, n)
					delete(s.retryAt, n)
				}
			}
			s.mu.Unlock()
			if sweep {
				s.enqueueAll()
			}
			s.enqueue(due...)
		}
	}
}

// watched reports whether name is a watched service.
func (s *scaler) watched(name string) bool {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.watchers[name] != nil
}

// sweep queues every service, at most once per sweepMinInterval: one asked
// for sooner is held until then (retryLoop starts it).
func (s *scaler) sweep() {
	s.mu.Lock()
	now := time.Now()
	if now.Sub(s.lastSweep) < sweepMinInterval {
		if s.sweepAt.IsZero() {
			s.sweepAt = s.lastSweep.Add(sweepMinInterval)
		}
		s.mu.Unlock()
		return
	}
	s.lastSweep = now
	s.sweepAt = time.Time{}
	s.mu.Unlock()
	s.enqueueAll()
}

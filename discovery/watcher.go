package discovery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// watcher is the per-service state machine: it turns Consul's answers for one
// service into published sets (fail static, index rules, failover). In
// per-service mode its own goroutine drives it with blocking queries; in
// scaled mode the Manager's fetchers drive it with plain reads, one at a time
// (see scaler). Its fields are set under Manager.mu before it is driven;
// afterwards set and st belong to whoever drives it.
type watcher struct {
	m      *Manager
	watch  Watch
	log    hclog.Logger
	cancel context.CancelFunc // nil until started; guarded by Manager.mu

	// set is the last set this watcher published (or inherited).
	set *InstanceSet
	st  loopState
}

// loopState is what the loop remembers between queries.
type loopState struct {
	waitIndex    uint64    // WaitIndex of the next query
	lastIndex    uint64    // X-Consul-Index of the last believed answer
	failures     int       // consecutive failed (or suspect) queries
	confirming   bool      // the next answer re-checks a tentative empty one
	confirmUntil time.Time // while confirming: until when an empty answer is held
	// settleUntil is confirmWindow after the first answer that followed an
	// outage or an index reset: until then an empty answer is tentative
	// even after a non-empty one was believed. A restarted server answers
	// from its restored catalog, where checks still pass, before the
	// agent's anti-entropy writes the restored checks' critical status
	// over it; the instances come back when the checks have run.
	settleUntil time.Time
}

// failoverRefresh bounds how long a failed-over service's remote instances
// go without a re-read: while failed over, the local query waits at most
// this long, and each wake re-reads the failover datacenters.
const failoverRefresh = 5 * time.Second

func (m *Manager) newWatcher(w Watch, inherit *InstanceSet) *watcher {
	log := m.log.With("service", w.Service)
	if w.Tag != "" {
		log = log.With("tag", w.Tag)
	}
	return &watcher{m: m, watch: w, log: log, set: inherit}
}

// stop cancels the watcher's context and so its in-flight query. Manager.mu
// must be held.
func (w *watcher) stop() {
	if w.cancel != nil {
		w.cancel()
	}
}

// run is the per-service mode's loop: one blocking query after another.
func (w *watcher) run(ctx context.Context) {
	w.st = loopState{} // a new Run starts with a plain read
	var delay time.Duration
	for {
		if !sleep(ctx, delay) {
			return
		}
		var done bool
		delay, _, done = w.query(ctx, true, false)
		if done {
			return
		}
	}
}

// query reads the service once — a blocking query on the last index when
// blocking, else a plain read, from the leader when leader is set (not a
// stale read whatever AllowStale) — and, when the local datacenter has nothing
// routable, the failover datacenters; it publishes the outcome. It returns
// the pause before the next query, whether the service needs another read
// soon whatever the change detector says (after an error, a tentative empty
// answer, or while failed over), and done when ctx was cancelled.
func (w *watcher) query(ctx context.Context, blocking, leader bool) (delay time.Duration, again, done bool) {
	st := &w.st
	q := &api.QueryOptions{
		WaitTime:   w.m.opts.WaitTime,
		AllowStale: w.m.opts.AllowStale && !leader,
		UseCache:   w.m.opts.UseCache,
		Datacenter: w.m.opts.Datacenter,
	}
	if blocking {
		q.WaitIndex = st.waitIndex
		if w.set != nil && w.set.FailedOver {
			q.WaitTime = min(q.WaitTime, failoverRefresh)
		}
		if st.confirming && st.waitIndex != 0 {
			// Holding a tentative empty answer: wait for a change no
			// longer than the confirm window (see answer).
			q.WaitTime = min(q.WaitTime, max(time.Until(st.confirmUntil), w.m.timing.floorMin))
		}
	}
	start := time.Now()
	wait := time.Duration(0)
	if blocking {
		wait = q.WaitTime
	}
	qctx, cancel := w.m.timing.bound(ctx, wait)
	entries, meta, err := w.m.opts.Health.Service(w.watch.Service, w.watch.Tag, false, q.WithContext(qctx))
	cancel()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return 0, false, true // stopped: not an error
	}
	if err != nil {
		what := "read"
		if blocking {
			what = "blocking query"
		}
		return w.fail(fmt.Errorf("discovery: service %q: %s: %w", w.watch.Service, what, err)), true, false
	}
	if !blocking {
		st.waitIndex = 0 // pause() must not see a plain read as a stuck blocking query
	}
	delay, again = w.answer(ctx, entries, meta, elapsed, blocking)
	return delay, again, ctx.Err() != nil
}

// fail handles a failed or suspect query: keep the last set, mark it stale,
// back off. It returns the delay before the next query.
func (w *watcher) fail(err error) time.Duration {
	st := &w.st
	st.failures++
	st.confirming = false
	// The retry is a plain read: an agent that restarted with lower indexes
	// would hold a query on our old index for the whole WaitTime.
	st.waitIndex = 0
	t := w.m.timing
	delay := max(backoff(st.failures, t.backoffBase, t.backoffCap, rand.Float64()), t.floor(rand.Float64()))
	if st.failures == 1 {
		w.log.Warn("query failed; serving last known instances", "error", err, "retry_in", delay.Round(time.Millisecond), "index", st.lastIndex)
	} else {
		w.log.Debug("query failed again", "error", err, "retry_in", delay.Round(time.Millisecond), "index", st.lastIndex)
	}
	if f := w.m.opts.OnError; f != nil {
		f(w.watch.Service, err)
	}
	w.markStale(err)
	return delay
}

// markStale publishes the last set marked stale with err.
func (w *watcher) markStale(err error) {
	old := w.set
	next := *old
	next.Stale = true
	next.Err = err
	if w.m.publish(w, &next, !old.Stale) {
		w.set = &next
	}
}

// answer handles a successful local answer and returns the delay before the
// next query and whether another read is due soon regardless of changes.
func (w *watcher) answer(ctx context.Context, entries []*api.ServiceEntry, meta *api.QueryMeta, elapsed time.Duration, blocking bool) (time.Duration, bool) {
	st := &w.st
	if meta == nil {
		meta = &api.QueryMeta{}
	}
	got := meta.LastIndex
	instances, all := toInstances(entries, w.watch.health(), w.m.opts.Datacenter)
	step := nextIndex(st.lastIndex, got)
	old := w.set
	now := time.Now()
	if step.reset || st.failures > 0 {
		st.settleUntil = now.Add(w.m.timing.confirmWindow)
	}
	v := decide(facts{
		Empty:       len(instances) == 0,
		LeaderKnown: leaderKnown(meta),
		Reset:       step.reset,
		Recovering:  st.failures > 0,
		Confirming:  st.confirming,
		Holding:     st.confirming && now.Before(st.confirmUntil),
		Settling:    now.Before(st.settleUntil),
		LastKnown:   old.Known && !old.FromSnapshot,
		LastEmpty:   len(old.Instances) == 0,
	})
	t := w.m.timing
	switch v {
	case holdSuspect:
		return w.fail(fmt.Errorf("discovery: service %q: %w", w.watch.Service, ErrNoLeader)), true
	case holdTentative:
		first := !st.confirming
		st.confirming = true
		st.lastIndex = got
		if first {
			st.confirmUntil = now.Add(t.confirmWindow)
		}
		if first || !blocking {
			st.waitIndex = 0
			delay := t.confirm(rand.Float64())
			if first {
				w.log.Info("no routable instance in the answer after an index reset or an outage; holding the last instances while Consul settles",
					"index", got, "retry_in", delay.Round(time.Millisecond), "for_at_most", t.confirmWindow)
			}
			return delay, true
		}
		// Still nothing routable: an agent that restarted restores its
		// services with their checks critical until each has run once
		// (Consul staggers the first run over the check's interval), and
		// sidecars re-register what it forgot within seconds. Wait on
		// this index for that change, up to the confirm window.
		st.waitIndex = got
		return t.floor(rand.Float64()), true
	}

	if step.reset {
		w.log.Debug("index went backwards; resetting", "index", got)
	}
	if st.failures > 0 {
		w.log.Info("query recovered", "index", got, "instances", len(instances))
	}
	delay := pause(st.waitIndex, st.lastIndex, got, elapsed, t, rand.Float64())
	st.failures = 0
	st.confirming = false
	st.waitIndex = step.next
	st.lastIndex = got

	dc := w.m.opts.Datacenter
	if len(all) > 0 {
		dc = all[0].Datacenter
	}
	failedOver := false
	if len(instances) == 0 && len(w.watch.Failover) > 0 {
		if rdc, rin, rall := w.failover(ctx); rdc != "" {
			dc, instances, failedOver = rdc, rin, true
			all = append(all, rall...)
		}
	}
	if failedOver != old.FailedOver {
		if failedOver {
			w.log.Warn("no routable instance in the local datacenter; failing over", "datacenter", dc, "instances", len(instances))
		} else if old.Known {
			w.log.Info("local datacenter has routable instances again; back from failover", "instances", len(instances))
		}
	}
	same := old.Known && old.Datacenter == dc && old.FailedOver == failedOver && sameInstances(old.Instances, instances) && sameInstances(old.All, all)
	if same {
		instances, all = old.Instances, old.All // share the published slices; they are immutable
	}
	changed := !same || old.Stale
	next := &InstanceSet{
		Service:     w.watch.Service,
		Instances:   instances,
		All:         all,
		Datacenter:  dc,
		FailedOver:  failedOver,
		Known:       true,
		Index:       got,
		LastContact: time.Now(),
	}
	if w.m.publish(w, next, changed) {
		w.set = next
		if !sameInstances(old.Instances, instances) || !old.Known {
			w.logChange(old, next)
			if f := w.m.opts.OnUpdate; f != nil {
				f(w.watch.Service)
			}
		}
	}
	return delay, failedOver
}

// failover reads the failover datacenters in order (plain reads) and returns
// the first with a routable instance: its name, routable and all instances.
// It returns "" when none has one or none answers.
func (w *watcher) failover(ctx context.Context) (dc string, routable, all []Instance) {
	for _, fdc := range w.watch.Failover {
		q := &api.QueryOptions{AllowStale: w.m.opts.AllowStale, Datacenter: fdc}
		qctx, cancel := w.m.timing.bound(ctx, 0)
		entries, _, err := w.m.opts.Health.Service(w.watch.Service, w.watch.Tag, false, q.WithContext(qctx))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("failover datacenter did not answer", "datacenter", fdc, "error", err)
			}
			continue
		}
		r, a := toInstances(entries, w.watch.health(), fdc)
		if len(r) > 0 {
			return fdc, r, a
		}
	}
	return "", nil, nil
}

func (w *watcher) logChange(old, next *InstanceSet) {
	switch {
	case len(next.Instances) == 0 && len(old.Instances) > 0:
		w.log.Warn("service has no routable instances", "index", next.Index, "registered", len(next.All))
	case !old.Known:
		w.log.Debug("first answer", "index", next.Index, "instances", len(next.Instances))
	default:
		w.log.Debug("instances changed", "index", next.Index, "instances", len(next.Instances))
	}
}

// sleep waits d or until ctx is done, reporting whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

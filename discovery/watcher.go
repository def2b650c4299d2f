package discovery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// watcher runs the blocking-query loop of one service. Its fields are set
// under Manager.mu before the goroutine starts; afterwards set and the loop
// state belong to the goroutine.
type watcher struct {
	m      *Manager
	watch  Watch
	log    hclog.Logger
	cancel context.CancelFunc // nil until started; guarded by Manager.mu

	// set is the last set this watcher published (or inherited); owned by
	// the running goroutine.
	set *InstanceSet
}

// loopState is what the loop remembers between queries.
type loopState struct {
	waitIndex  uint64 // WaitIndex of the next query
	lastIndex  uint64 // X-Consul-Index of the last believed answer
	failures   int    // consecutive failed (or suspect) queries
	confirming bool   // the next answer re-checks a tentative empty one
}

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

func (w *watcher) run(ctx context.Context) {
	var st loopState
	var delay time.Duration
	for {
		if !sleep(ctx, delay) {
			return
		}
		q := &api.QueryOptions{
			WaitIndex:  st.waitIndex,
			WaitTime:   w.m.opts.WaitTime,
			AllowStale: w.m.opts.AllowStale,
			UseCache:   w.m.opts.UseCache,
			Datacenter: w.m.opts.Datacenter,
		}
		start := time.Now()
		entries, meta, err := w.m.opts.Health.Service(w.watch.Service, w.watch.Tag, true, q.WithContext(ctx))
		elapsed := time.Since(start)
		if ctx.Err() != nil {
			return // stopped: not an error
		}
		if err != nil {
			delay = w.fail(&st, fmt.Errorf("discovery: service %q: blocking query: %w", w.watch.Service, err))
			continue
		}
		delay = w.answer(&st, entries, meta, elapsed)
	}
}

// fail handles a failed or suspect query: keep the last set, mark it stale,
// back off. It returns the delay before the next query.
func (w *watcher) fail(st *loopState, err error) time.Duration {
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
	old := w.set
	next := *old
	next.Stale = true
	next.Err = err
	if w.m.publish(w, &next, !old.Stale) {
		w.set = &next
	}
	return delay
}

// answer handles a successful query and returns the delay before the next.
func (w *watcher) answer(st *loopState, entries []*api.ServiceEntry, meta *api.QueryMeta, elapsed time.Duration) time.Duration {
	if meta == nil {
		meta = &api.QueryMeta{}
	}
	got := meta.LastIndex
	instances := toInstances(entries)
	step := nextIndex(st.lastIndex, got)
	old := w.set
	v := decide(facts{
		Empty:       len(instances) == 0,
		LeaderKnown: leaderKnown(meta),
		Reset:       step.reset,
		Recovering:  st.failures > 0,
		Confirming:  st.confirming,
		LastKnown:   old.Known,
		LastEmpty:   len(old.Instances) == 0,
	})
	t := w.m.timing
	switch v {
	case holdSuspect:
		return w.fail(st, fmt.Errorf("discovery: service %q: %w", w.watch.Service, ErrNoLeader))
	case holdTentative:
		st.confirming = true
		st.waitIndex = 0
		st.lastIndex = got
		delay := t.confirm(rand.Float64())
		w.log.Info("empty answer after an index reset or an outage; confirming before dropping instances",
			"index", got, "retry_in", delay.Round(time.Millisecond))
		return delay
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

	same := old.Known && sameInstances(old.Instances, instances)
	if same {
		instances = old.Instances // share the published slice; it is immutable
	}
	changed := !same || old.Stale
	next := &InstanceSet{
		Service:     w.watch.Service,
		Instances:   instances,
		Known:       true,
		Index:       got,
		LastContact: time.Now(),
	}
	if w.m.publish(w, next, changed) {
		w.set = next
		if !same {
			w.logChange(old, next)
			if f := w.m.opts.OnUpdate; f != nil {
				f(w.watch.Service)
			}
		}
	}
	return delay
}

func (w *watcher) logChange(old, next *InstanceSet) {
	switch {
	case len(next.Instances) == 0 && len(old.Instances) > 0:
		w.log.Warn("service has no passing instances", "index", next.Index)
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

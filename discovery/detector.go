package discovery

import (
	"context"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// detector is scaled mode's change detector: two cluster-wide blocking
// queries whose answers it diffs to name the services that changed.
//
//   - Every check (/v1/health/state/any): a check added, removed or changing
//     status names its service; a node check names every watched service
//     with an instance on that node. This sees health changes and the
//     registration and deregistration of instances that have checks.
//   - The catalog (/v1/catalog/services): a service added or removed, or
//     whose tags changed, is named. Its index also moves when an instance
//     is changed in place or registered without checks, which neither diff
//     can name: after waiting briefly for the checks query to explain the
//     same index, such a change queues a sweep of every service.
type detector struct {
	s *scaler

	mu         sync.Mutex
	checksSeen uint64      // index of the checks query's last answer; guarded by mu
	explained  [64]uint64  // ring of checks-answer indexes that named a change; guarded by mu
	next       int         // next slot of explained; guarded by mu
	seenCh     chan uint64 // checksSeen after each checks answer (capacity 1, latest wins)
}

// explainWait is how long an unexplained catalog change waits for the
// checks query to explain it before a sweep is queued.
var explainWait = 50 * time.Millisecond

func newDetector(s *scaler) *detector { return &detector{s: s, seenCh: make(chan uint64, 1)} }

// loop runs one blocking query after another with the per-service mode's
// index rules, pacing and backoff, calling answer with each answer's index
// and whether the loop just recovered from errors or an index reset.
func (d *detector) loop(ctx context.Context, what string, query func(q *api.QueryOptions) (uint64, error), answer func(index, last uint64, resync bool)) {
	m := d.s.m
	t := m.timing
	var waitIndex, lastIndex uint64
	failures := 0
	var delay time.Duration
	for {
		if !sleep(ctx, delay) {
			return
		}
		q := &api.QueryOptions{WaitIndex: waitIndex, WaitTime: m.opts.WaitTime, AllowStale: m.opts.AllowStale, Datacenter: m.opts.Datacenter}
		start := time.Now()
		got, err := query(q.WithContext(ctx))
		elapsed := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			waitIndex = 0
			delay = max(backoff(failures, t.backoffBase, t.backoffCap, rand.Float64()), t.floor(rand.Float64()))
			if failures == 1 {
				m.log.Warn("change detector query failed; re-reading every service", "query", what, "error", err, "retry_in", delay.Round(time.Millisecond))
				// Each service's read fails too and marks its set stale,
				// then retries with its own backoff.
				d.s.enqueueAll()
			}
			continue
		}
		step := nextIndex(lastIndex, got)
		resync := failures > 0 || step.reset
		if failures > 0 {
			m.log.Info("change detector recovered; re-reading every service", "query", what, "index", got)
		}
		failures = 0
		answer(got, lastIndex, resync)
		delay = pause(waitIndex, lastIndex, got, elapsed, t, rand.Float64())
		waitIndex, lastIndex = step.next, got
	}
}

// runChecks watches every check in the cluster.
func (d *detector) runChecks(ctx context.Context) {
	var prev *checkPrints
	d.loop(ctx, "health/state/any", func(q *api.QueryOptions) (uint64, error) {
		checks, meta, err := d.s.m.opts.Cluster.State(api.HealthAny, q)
		if err != nil {
			return 0, err
		}
		cur := fingerprint(checks)
		got := metaIndex(meta)
		if prev != nil {
			changed := d.affected(prev, cur)
			d.s.enqueue(changed...)
			if len(changed) > 0 {
				d.explain(got)
			}
		}
		prev = cur
		d.seen(got)
		return got, nil
	}, func(_, _ uint64, resync bool) {
		if resync {
			d.s.enqueueAll()
		}
	})
}

// runCatalog watches the service catalog.
func (d *detector) runCatalog(ctx context.Context) {
	var prev map[string][]string
	var cur map[string][]string
	d.loop(ctx, "catalog/services", func(q *api.QueryOptions) (uint64, error) {
		svcs, meta, err := d.s.m.opts.Cluster.Services(q)
		if err != nil {
			return 0, err
		}
		cur = svcs
		return metaIndex(meta), nil
	}, func(index, last uint64, resync bool) {
		defer func() { prev = cur }()
		if resync {
			d.s.enqueueAll()
			return
		}
		if prev == nil || index == last {
			return
		}
		var changed []string
		for name, tags := range cur {
			if old, ok := prev[name]; (!ok || !slices.Equal(old, tags)) && d.s.watched(name) {
				changed = append(changed, name)
			}
		}
		for name := range prev {
			if _, ok := cur[name]; !ok && d.s.watched(name) {
				changed = append(changed, name)
			}
		}
		if len(changed) > 0 {
			d.s.enqueue(changed...)
			return
		}
		if !d.explainedBy(ctx, last, index) {
			d.s.m.log.Debug("catalog changed in a way the diffs cannot name; sweeping every service", "index", index)
			d.s.sweep()
		}
	})
}

// metaIndex is an answer's X-Consul-Index (0 without meta).
func metaIndex(meta *api.QueryMeta) uint64 {
	if meta == nil {
		return 0
	}
	return meta.LastIndex
}

// seen records the index of a checks answer.
func (d *detector) seen(index uint64) {
	d.mu.Lock()
	d.checksSeen = index
	d.mu.Unlock()
	select {
	case <-d.seenCh:
	default:
	}
	d.seenCh <- index
}

// explain records that the checks answer at index named a change.
func (d *detector) explain(index uint64) {
	d.mu.Lock()
	d.explained[d.next] = index
	d.next = (d.next + 1) % len(d.explained)
	d.mu.Unlock()
}

// explainedBy reports whether a checks answer with an index in (from, to]
// named a change, waiting up to explainWait for the checks query to reach
// index to.
func (d *detector) explainedBy(ctx context.Context, from, to uint64) bool {
	timer := time.NewTimer(explainWait)
	defer timer.Stop()
	for {
		d.mu.Lock()
		reached := d.checksSeen >= to
		found := false
		for _, i := range d.explained {
			if i > from && i <= to {
				found = true
				break
			}
		}
		d.mu.Unlock()
		if found || reached {
			return found
		}
		select {
		case <-ctx.Done():
			return true
		case <-timer.C:
			return false
		case <-d.seenCh:
		}
	}
}

// checkPrints sums the checks of each service and of each node: the sum of
// one hash per check over what routing depends on (node, check ID, service
// ID, status), so that any change in a service's checks changes its sum.
type checkPrints struct {
	services map[string]uint64
	nodes    map[string]uint64
}

func fingerprint(checks api.HealthChecks) *checkPrints {
	p := &checkPrints{services: make(map[string]uint64), nodes: make(map[string]uint64)}
	h := fnv.New64a()
	for _, c := range checks {
		if c == nil {
			continue
		}
		h.Reset()
		for _, s := range [...]string{c.Node, c.CheckID, c.ServiceID, c.Status} {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		v := h.Sum64() | 1 // never 0, so a present entry differs from an absent one
		if c.ServiceID == "" {
			p.nodes[c.Node] += v
		} else {
			p.services[c.ServiceName] += v
		}
	}
	return p
}

// affected lists the watched services whose checks differ between two
// fingerprints, directly or through a check of a node they have an instance
// on.
func (d *detector) affected(prev, cur *checkPrints) []string {
	names := make(map[string]bool)
	for _, pair := range [][2]map[string]uint64{{prev.services, cur.services}, {cur.services, prev.services}} {
		for name, v := range pair[0] {
			if pair[1][name] != v && d.s.watched(name) {
				names[name] = true
			}
		}
	}
	nodes := make(map[string]bool)
	for _, pair := range [][2]map[string]uint64{{prev.nodes, cur.nodes}, {cur.nodes, prev.nodes}} {
		for node, v := range pair[0] {
			if pair[1][node] != v {
				nodes[node] = true
			}
		}
	}
	if len(nodes) > 0 {
		for name, set := range d.s.m.Sets() {
			for _, in := range set.All {
				if nodes[in.Node] {
					names[name] = true
					break
				}
			}
		}
	}
	return slices.Collect(maps.Keys(names))
}

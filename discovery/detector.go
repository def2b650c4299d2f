package discovery

import (
	"context"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// detector is scaled mode's change detector: two cluster-wide blocking
// queries, each kept cheap for Consul, whose answers it diffs to name the
// services that changed.
//
//   - The checks that are not passing (/v1/health/state/any with the filter
//     Status != "passing"; it blocks on the index of every check): a check
//     turning warning or critical, or passing again, names its service; a
//     node check names every watched service with an instance on that node.
//     The answer holds only the failing checks, not the whole cluster's.
//   - The catalog (/v1/catalog/services; it blocks on the index of every
//     service registration): on a move it names services added, removed or
//     whose tags changed, and re-reads every check once (a plain read) to
//     name the services whose instances with checks were registered or
//     deregistered. What neither diff can name — an instance without checks
//     added, removed or changed in place — queues a sweep of every service.
//
// A health change thus costs Consul one small answer plus one read of the
// changed service; a registration one catalog answer, one list of checks
// and one read per changed service. Under churn, a catalog answer whose
// changes the last check-list read already saw (its index is at most that
// read's) reads no list of its own.
type detector struct {
	s *scaler
	// baselines counts the loops that have their first answer; the
	// services are read once both have, so that no change falls between a
	// service's first read and the answer its later changes are diffed
	// against.
	baselines atomic.Int32
}

// baseline records a loop's first answer; after the second, every service
// is queued for its first read.
func (d *detector) baseline() {
	if d.baselines.Add(1) == 2 {
		d.s.m.mu.Lock()
		names := make([]string, 0, len(d.s.m.watchers))
		for n := range d.s.m.watchers {
			names = append(names, n)
		}
		d.s.m.mu.Unlock()
		d.s.enqueue(names...)
	}
}

// notPassing is the filter of the checks query.
const notPassing = `Status != "passing"`

func newDetector(s *scaler) *detector { return &detector{s: s} }

// loop runs one blocking query after another with the per-service mode's
// index rules, pacing and backoff. query sends one and returns its index;
// answer gets that index, the previous one and whether the loop just
// recovered from errors or an index reset (then every service is re-read).
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
		qctx, cancel := m.timing.bound(ctx, q.WaitTime)
		got, err := query(q.WithContext(qctx))
		cancel()
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
		answered := time.Now()
		answer(got, lastIndex, resync)
		// The pause runs from the answer, not from the end of answer's
		// work: the catalog's answer reads the check list, and waiting the
		// floor after that read too would add it to the path of every
		// change that lands meanwhile. The rate stays bounded, since a new
		// query still starts at least the floor after the last answer.
		delay = pause(waitIndex, lastIndex, got, elapsed, t, rand.Float64()) - time.Since(answered)
		waitIndex, lastIndex = step.next, got
	}
}

// runChecks watches the checks that are not passing.
func (d *detector) runChecks(ctx context.Context) {
	var prev, cur *checkPrints
	d.loop(ctx, "health/state/any (not passing)", func(q *api.QueryOptions) (uint64, error) {
		q.Filter = notPassing
		checks, meta, err := d.s.m.opts.Cluster.Checks(q)
		if err != nil {
			return 0, err
		}
		cur = fingerprint(checks)
		return metaIndex(meta), nil
	}, func(_, _ uint64, resync bool) {
		defer func() { prev = cur }()
		switch {
		case prev == nil:
			d.baseline()
		case resync:
			d.s.enqueueAll()
		default:
			d.s.enqueue(d.affected(prev, cur)...)
		}
	})
}

// runCatalog watches the service catalog, and re-reads every check when it
// moves.
func (d *detector) runCatalog(ctx context.Context) {
	var prev, cur map[string][]string
	var prevChecks *checkPrints
	// checksIndex is the index of the last check-list read. That read
	// happens after the catalog answer that triggered it, so it already saw
	// the registrations (with checks) of later catalog answers up to it.
	var checksIndex uint64
	d.loop(ctx, "catalog/services", func(q *api.QueryOptions) (uint64, error) {
		svcs, meta, err := d.s.m.opts.Cluster.Services(q)
		if err != nil {
			return 0, err
		}
		cur = svcs
		return metaIndex(meta), nil
	}, func(index, last uint64, resync bool) {
		defer func() { prev = cur }()
		if index == last && !resync && prevChecks != nil {
			return
		}
		var named []string
		if prev != nil && !resync {
			// Services added, removed or retagged are read at once, not
			// after the check-list read below.
			named = d.catalogDiff(prev, cur)
			d.s.enqueue(named...)
		}
		if index <= checksIndex && !resync && prev != nil && prevChecks != nil {
			// The last check-list read came after this change and named
			// what it could. Without this, under steady churn every round
			// would read the whole list again for changes it has already
			// seen. (An instance without checks changed in the same
			// window is left to the periodic resync.)
			return
		}
		rctx, cancel := d.s.m.timing.bound(d.s.ctx, 0)
		checks, meta, err := d.s.m.opts.Cluster.Checks((&api.QueryOptions{AllowStale: d.s.m.opts.AllowStale,
			Datacenter: d.s.m.opts.Datacenter}).WithContext(rctx))
		cancel()
		var curChecks *checkPrints
		if err == nil {
			curChecks = fingerprint(checks)
			checksIndex = metaIndex(meta)
		} else if d.s.ctx.Err() == nil {
			d.s.m.log.Warn("cannot read the cluster's checks; sweeping every service instead", "error", err)
		}
		defer func() { prevChecks = curChecks }()
		if prev == nil {
			d.baseline()
		}
		if resync || prev == nil || prevChecks == nil || curChecks == nil {
			if prev != nil || resync || curChecks == nil {
				d.s.sweep()
			}
			return
		}
		if changed := d.affected(prevChecks, curChecks); len(changed) > 0 || len(named) > 0 {
			d.s.enqueue(changed...)
			return
		}
		d.s.m.log.Debug("catalog changed in a way the diffs cannot name (an instance without checks); sweeping every service", "index", index)
		d.s.sweep()
	})
}

// catalogDiff lists the watched services added to, removed from or with
// other tags in the catalog between two answers.
func (d *detector) catalogDiff(prev, cur map[string][]string) []string {
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
	return changed
}

// metaIndex is an answer's X-Consul-Index (0 without meta).
func metaIndex(meta *api.QueryMeta) uint64 {
	if meta == nil {
		return 0
	}
	return meta.LastIndex
}

// checkPrints sums the checks of each service and of each node: the sum of
// one hash per check over what routing depends on (node, check ID, service
// ID, status), so that any change in a service's checks changes its sum.
type checkPrints struct {
	services map[string]uint64
	nodes    map[string]uint64
}

func fingerprint(checks []CheckState) *checkPrints {
	p := &checkPrints{services: make(map[string]uint64), nodes: make(map[string]uint64)}
	h := fnv.New64a()
	for _, c := range checks {
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

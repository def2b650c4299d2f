package filter

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Counters counts one filter's outcomes by a fixed list of reasons (bounded
// labels: "missing", "invalid", "expired", "forbidden" for jwt; "limited",
// "store_error" for rate_limit). Add is an atomic add, cheap on the request
// path; a nil *Counters counts nothing. Safe for concurrent use.
type Counters struct {
	reasons []string
	counts  []atomic.Uint64
}

// Add counts one outcome of reason; an unknown reason is ignored.
func (c *Counters) Add(reason string) {
	if c == nil {
		return
	}
	for i, r := range c.reasons {
		if r == reason {
			c.counts[i].Add(1)
			return
		}
	}
}

// Get returns the count of reason.
func (c *Counters) Get(reason string) uint64 {
	if c == nil {
		return 0
	}
	for i, r := range c.reasons {
		if r == reason {
			return c.counts[i].Load()
		}
	}
	return 0
}

// Stats holds the Counters of every route's filters. It is long-lived, like
// the core's route statistics: the chain builder asks it for the same
// Counters on every reload, so totals only grow while a route keeps its
// filter; cmd publishes them (Each) at scrape time. Safe for concurrent use.
type Stats struct {
	mu sync.Mutex
	m  map[statsKey]*Counters
}

type statsKey struct{ route, filter string }

// For returns the counters of the route's filter of that kind (one set per
// kind and route: two rate_limit filters on a route share it), created with
// reasons on first use. A nil *Stats returns nil (counting nothing).
func (s *Stats) For(route, filter string, reasons ...string) *Counters {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := statsKey{route, filter}
	if c := s.m[k]; c != nil {
		return c
	}
	if s.m == nil {
		s.m = make(map[statsKey]*Counters)
	}
	c := &Counters{reasons: reasons, counts: make([]atomic.Uint64, len(reasons))}
	s.m[k] = c
	return c
}

// Forget drops the counters of routes not in keep (after a reload removed
// them).
func (s *Stats) Forget(keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.m {
		if !keep[k.route] {
			delete(s.m, k)
		}
	}
}

// Each calls fn for every counter, sorted by route, filter and reason.
func (s *Stats) Each(fn func(route, filter, reason string, n uint64)) {
	s.mu.Lock()
	keys := make([]statsKey, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	cs := make(map[statsKey]*Counters, len(s.m))
	for k, c := range s.m {
		cs[k] = c
	}
	s.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].route != keys[j].route {
			return keys[i].route < keys[j].route
		}
		return keys[i].filter < keys[j].filter
	})
	for _, k := range keys {
		c := cs[k]
		for i, r := range c.reasons {
			fn(k.route, k.filter, r, c.counts[i].Load())
		}
	}
}

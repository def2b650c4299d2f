// Package cache is the cache route filter (SPEC §13): a shared HTTP cache
// per RFC 9111 for GET and HEAD, with a memory tier bounded by size (LRU)
// and an optional Redis tier behind it that a fleet of ferry instances
// shares. docs/filters.md says which parts of RFC 9111 it implements and
// which choices it makes where the RFC leaves them open.
//
// The filter takes part at four places of the core's exchange (proxy/filter
// extra.go): Request (a fresh hit is answered there, and a miss may wait
// for another request fetching the same object), Replace (a 304 to the
// cache's own revalidation becomes the stored response; a 5xx may become a
// stale one), Response (storability, invalidation), and Body (the stored
// copy is collected as the body streams to the client, and stored only
// when the body ended as framed).
package cache

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
)

// Deps are what a cache needs beyond its configuration.
type Deps struct {
	// Redis is the client of the top-level redis block (NewRedisClient),
	// required when the cache's store is "redis"; the caller owns it.
	Redis redis.UniversalClient
	// KeyPrefix prefixes every Redis key; default "ferry:cache:".
	KeyPrefix string
	Logger    hclog.Logger     // default: hclog.NewNullLogger()
	Now       func() time.Time // default: time.Now (tests set a clock)
}

// Filter is one route's cache: a filter.RequestFilter, ResponseFilter,
// BodyFilter, ResponseReplacer and Finisher. Safe for concurrent use.
type Filter struct {
	maxObject int64
	collapse  time.Duration
	mem       *memory
	shared    *shared // nil without the Redis tier
	now       func() time.Time
	log       hclog.Logger

	mu      sync.Mutex
	flights map[string]*flight // objects being fetched, by primary+variant

	hits, misses, stale, revalidated, bypass, collapsed, stored atomic.Uint64
}

var (
	_ filter.RequestFilter    = (*Filter)(nil)
	_ filter.ResponseFilter   = (*Filter)(nil)
	_ filter.BodyFilter       = (*Filter)(nil)
	_ filter.ResponseReplacer = (*Filter)(nil)
	_ filter.Finisher         = (*Filter)(nil)
)

// New builds the cache of a route's cache block.
func New(cfg config.Cache, deps Deps) (*Filter, error) {
	if cfg.MaxBytes <= 0 || cfg.MaxObjectBytes <= 0 {
		return nil, fmt.Errorf("cache: max_bytes and max_object_bytes must be positive")
	}
	f := &Filter{maxObject: min(cfg.MaxObjectBytes, cfg.MaxBytes), collapse: cfg.CollapseTimeout,
		mem: newMemory(cfg.MaxBytes), now: deps.Now, log: deps.Logger, flights: make(map[string]*flight)}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = hclog.NewNullLogger()
	}
	switch cfg.Store {
	case config.CacheStoreMemory, "":
	case config.CacheStoreRedis:
		if deps.Redis == nil {
			return nil, fmt.Errorf(`cache: store = "redis" needs a Redis client (the top-level redis block)`)
		}
		prefix := deps.KeyPrefix
		if prefix == "" {
			prefix = "ferry:cache:"
		}
		timeout := config.DefaultRedisTimeout
		if o, ok := deps.Redis.(*redis.Client); ok && o.Options().ReadTimeout > 0 {
			timeout = o.Options().ReadTimeout
		}
		f.shared = &shared{rdb: deps.Redis, prefix: prefix, timeout: timeout, log: f.log.Named("redis"), now: f.now}
	default:
		return nil, fmt.Errorf("cache: unknown store %q", cfg.Store)
	}
	return f, nil
}

// Stats are a cache's counters since it was built, for the core to export
// as metrics: ferry_cache_hits_total, ferry_cache_misses_total,
// ferry_cache_stale_total, ferry_cache_revalidated_total,
// ferry_cache_bypass_total, ferry_cache_collapsed_total,
// ferry_cache_stored_total, ferry_cache_evictions_total,
// ferry_cache_redis_errors_total, ferry_cache_redis_hits_total (counters)
// and ferry_cache_bytes, ferry_cache_objects (gauges of the memory tier),
// each with the label route.
type Stats struct {
	Hits        uint64 // answered from the cache while fresh (or 304 to a conditional)
	Misses      uint64 // looked up, went upstream
	Stale       uint64 // answered stale (stale-while-revalidate, stale-if-error)
	Revalidated uint64 // a 304 to the cache's validators made a stored response fresh again
	Bypass      uint64 // not cacheable: other methods, HEAD misses
	Collapsed   uint64 // waited for another request's fetch instead of going upstream
	Stored      uint64 // responses stored
	Evictions   uint64 // objects evicted from the memory tier to make room
	Bytes       int64  // bytes in the memory tier
	Objects     int    // objects in the memory tier
	RedisErrors uint64 // failed Redis commands (the request went on without Redis)
	RedisHits   uint64 // objects found in Redis after a memory miss
}

// Stats returns the counters.
func (f *Filter) Stats() Stats {
	bytes, objects, evictions := f.mem.usage()
	s := Stats{Hits: f.hits.Load(), Misses: f.misses.Load(), Stale: f.stale.Load(),
		Revalidated: f.revalidated.Load(), Bypass: f.bypass.Load(), Collapsed: f.collapsed.Load(),
		Stored: f.stored.Load(), Evictions: evictions, Bytes: bytes, Objects: objects}
	if f.shared != nil {
		s.RedisErrors = f.shared.errors.Load()
		s.RedisHits = f.shared.hits.Load()
	}
	return s
}

// Purge removes what is stored for a URL's host, path and query (every
// route, variant and keyed field), or for every URL starting with it when
// prefix, from both tiers. It returns the number of entries removed. For
// the admin API's POST /v1/cache/purge.
func (f *Filter) Purge(ctx context.Context, host, path, rawQuery string, prefix bool) (int, error) {
	u := urlKey(host, path, rawQuery)
	if prefix && rawQuery == "" {
		u = u[:len(u)-1] // "/img" matches "/img/a?x" and "/img?x"
	}
	n := f.mem.invalidate(u, prefix)
	if f.shared != nil {
		m, err := f.shared.invalidate(ctx, u, prefix)
		return n + m, err
	}
	return n, nil
}

// flight is an object being fetched; done closes when the fetch ended
// (stored or not).
type flight struct{ done chan struct{} }

// state is one request's passage through the cache, kept with
// Request.Set.
type state struct {
	k       key
	variant string
	stale   *object // the stored response being revalidated (or nil)
	added   bool    // the cache added validators the client did not send
	started time.Time
	lead    *flight // the flight this request fetches for
	unsafe  bool    // a method that invalidates on success
	noStore bool    // the request said no-store
	store   bool    // decided in Response
}

type stateKey struct{}

func stateOf(r filter.Request) *state {
	st, _ := r.Value(stateKey{}).(*state)
	return st
}

// flightKey is the key of the object a request asks for.
func (st *state) flightKey() string { return st.k.primary() + "\x01" + st.variant }

// Request answers fresh hits and lets misses go upstream, collapsing
// concurrent misses for one object into one upstream request.
func (f *Filter) Request(ctx context.Context, r filter.Request) *filter.Answer {
	method := r.Method()
	if method != http.MethodGet && method != http.MethodHead {
		if !safeMethod(method) {
			r.Set(stateKey{}, &state{k: requestKey(r), unsafe: true})
		}
		f.bypass.Add(1)
		return nil
	}
	st := &state{k: requestKey(r), started: f.now()}
	reqCC := parseCacheControl(r.HeaderValues("Cache-Control"))
	st.noStore = reqCC.noStore
	r.Set(stateKey{}, st)

	waited := false
	for {
		o := f.lookup(ctx, st, r)
		if o != nil {
			if a := f.serve(st, r, o); a != nil {
				return a
			}
			// Stale and not servable as is: this request revalidates.
		}
		if reqCC.onlyIfCached { // §5.2.1.7
			f.misses.Add(1)
			return &filter.Answer{Status: http.StatusGatewayTimeout, Header: [][2]string{{"X-Cache", "MISS"}}}
		}
		if method == http.MethodHead || f.collapse <= 0 || waited {
			break
		}
		fl, leader := f.join(st)
		if leader {
			break
		}
		f.collapsed.Add(1)
		if !f.wait(ctx, fl) {
			f.abandon(st, fl)
			break // timed out or the client left: go upstream on our own
		}
		waited = true
	}
	if st.stale != nil && r.Header("If-None-Match") == "" && r.Header("If-Modified-Since") == "" {
		if et := st.stale.get("ETag"); et != "" {
			r.SetHeader("If-None-Match", et)
			st.added = true
		}
		if lm := st.stale.get("Last-Modified"); lm != "" {
			r.SetHeader("If-Modified-Since", lm)
			st.added = true
		}
	}
	st.started = f.now()
	if method == http.MethodHead && st.stale == nil {
		f.bypass.Add(1)
	} else {
		f.misses.Add(1)
	}
	return nil
}

// safeMethod reports the methods that never invalidate (RFC 9110 §9.2.1).
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// lookup finds the stored variant for the request in memory, then Redis
// (filling memory from it). It sets st.variant from the stored Vary.
func (f *Filter) lookup(ctx context.Context, st *state, r filter.Request) *object {
	primary := st.k.primary()
	if vary, ok := f.mem.vary(primary); ok {
		st.variant = variantKey(vary, r)
		if o := f.mem.get(primary, st.variant); o != nil {
			return o
		}
	}
	if f.shared == nil {
		return nil
	}
	o := f.shared.get(ctx, st.k, func(vary []string) string {
		st.variant = variantKey(vary, r)
		return st.variant
	})
	if o != nil {
		f.mem.put(st.k, o)
	}
	return o
}

// join makes st the leader of its object's flight, or returns the flight
// another request leads.
func (f *Filter) join(st *state) (*flight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := st.flightKey()
	if fl, ok := f.flights[k]; ok {
		return fl, false
	}
	fl := &flight{done: make(chan struct{})}
	f.flights[k] = fl
	st.lead = fl
	return fl, true
}

// release ends st's flight, if it leads one; waiting requests look again.
func (f *Filter) release(st *state) {
	if st == nil || st.lead == nil {
		return
	}
	f.mu.Lock()
	k := st.flightKey()
	if f.flights[k] == st.lead {
		delete(f.flights, k)
	}
	f.mu.Unlock()
	close(st.lead.done)
	st.lead = nil
}

// abandon forgets a flight a waiter gave up on, so that a leader that is
// lost (its exchange never finished) delays one collapse_timeout at most;
// the next miss leads a new flight.
func (f *Filter) abandon(st *state, fl *flight) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := st.flightKey(); f.flights[k] == fl {
		delete(f.flights, k)
	}
}

// inFlight reports whether another request is fetching st's object.
func (f *Filter) inFlight(st *state) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.flights[st.flightKey()]
	return ok
}

// wait waits for fl, at most the collapse timeout; false when it did not
// end in time or ctx ended.
func (f *Filter) wait(ctx context.Context, fl *flight) bool {
	t := time.NewTimer(f.collapse)
	defer t.Stop()
	select {
	case <-fl.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Finish ends the request's flight however the exchange ended.
func (f *Filter) Finish(r filter.Request) {
	f.release(stateOf(r))
}

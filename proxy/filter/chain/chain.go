// Package chain turns a route's configured filters (config.Route.Filters, in
// the order written) into the *filter.Chain the forwarding core runs.
//
// Each filter kind has one case in Build's switch and one small builder
// function; a new kind (compress, cache) adds both.
package chain

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/cache"
	"github.com/ferry-proxy/ferry/proxy/filter/compress"
	"github.com/ferry-proxy/ferry/proxy/filter/headers"
	"github.com/ferry-proxy/ferry/proxy/filter/jwt"
	"github.com/ferry-proxy/ferry/proxy/filter/ratelimit"
)

// Deps is what filters need from the process.
type Deps struct {
	// Redis is the client of the top-level redis block (NewRedisClient);
	// nil without one. Required by rate_limit with store = "redis".
	Redis redis.Scripter
	// Logger is the parent logger; filters log under "filter".
	Logger hclog.Logger
	// Context bounds background goroutines (JWKS refresh): they end when it
	// ends or when Lifecycle.Close is called. Default: Background.
	Context context.Context
	// Lifecycle collects the background work of the chains built with it,
	// so that whoever replaces the routing table can stop and wait for the
	// old table's goroutines. Required when a route has a jwt jwks_url.
	Lifecycle *Lifecycle
	// Stats keeps the rejection counters across reloads; nil counts nothing.
	Stats *filter.Stats
	// Lookups keeps the counters of the jwt filters' caches of verified
	// tokens (hit, miss) across reloads; nil counts nothing.
	Lookups *filter.Stats
	// Caches keeps the routes' caches across reloads; nil: every build
	// makes new (empty) ones.
	Caches *Caches
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// HTTPClient fetches JWKS URLs; default a client with a 10s timeout.
	HTTPClient *http.Client
	// LookupEnv reads hs256_secret_env; default os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Build returns the chain of route's filters, or nil when it has none (a
// route without filters costs the core nothing). The error names the route,
// the filter and its position in the configuration.
func Build(route config.Route, deps Deps) (*filter.Chain, error) {
	if len(route.Filters) == 0 {
		return nil, nil
	}
	deps = deps.withDefaults()
	var names []string
	var built []any
	rateLimits := 0
	for _, f := range route.Filters {
		var (
			x   any
			err error
		)
		switch f.Kind {
		case config.FilterJWT:
			x, err = buildJWT(route, f, deps)
		case config.FilterRateLimit:
			rateLimits++
			x, err = buildRateLimit(route, f, rateLimits, deps)
		case config.FilterHeaders:
			x, err = buildHeaders(route, f)
		case config.FilterCompress:
			x, err = compress.New(*f.Compress)
		case config.FilterCache:
			x, err = buildCache(route, f, deps)
		default:
			err = fmt.Errorf("unknown filter kind %q", f.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("route %q: %s filter at %s: %w", route.Name, f.Kind, pos(f.Range), err)
		}
		names = append(names, f.Kind)
		built = append(built, x)
	}
	return filter.NewChain(names, built), nil
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = hclog.NewNullLogger()
	}
	if d.Context == nil {
		d.Context = context.Background()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.LookupEnv == nil {
		d.LookupEnv = os.LookupEnv
	}
	return d
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
}

func buildHeaders(route config.Route, f config.Filter) (any, error) {
	h := f.Headers
	fields := func(hv []config.HeaderValue) []headers.Field {
		out := make([]headers.Field, len(hv))
		for i, v := range hv {
			out[i] = headers.Field{Name: v.Name, Value: v.Value}
		}
		return out
	}
	return headers.New(headers.Options{
		RequestSet: fields(h.RequestSet), RequestAdd: fields(h.RequestAdd), RequestRemove: h.RequestRemove,
		ResponseSet: fields(h.ResponseSet), ResponseAdd: fields(h.ResponseAdd), ResponseRemove: h.ResponseRemove,
		Service: route.Service,
	}), nil
}

func buildRateLimit(route config.Route, f config.Filter, n int, deps Deps) (any, error) {
	rl := f.RateLimit
	b := ratelimit.Bucket{Rate: rl.Rate, Per: rl.Per, Burst: rl.Burst}
	counters := deps.Stats.For(route.Name, config.FilterRateLimit, ratelimit.Reasons...)
	local := ratelimit.NewLocal(b, rl.MaxKeys, deps.Now)
	var store ratelimit.Store = local
	if rl.Store == config.StoreRedis {
		if deps.Redis == nil {
			return nil, errors.New(`store = "redis" needs the redis block's client, which was not given`)
		}
		store = ratelimit.NewRedis(b, ratelimit.RedisOptions{
			Client:   deps.Redis,
			Prefix:   "ferry:ratelimit:" + route.Name + ":" + strconv.Itoa(n) + ":",
			Fallback: local, Counters: counters, Now: deps.Now,
			Logger: deps.Logger.Named("filter").With("route", route.Name, "filter", "rate_limit"),
		})
	}
	policy := route.Name
	if n > 1 {
		policy += "-" + strconv.Itoa(n)
	}
	return ratelimit.New(ratelimit.Options{Bucket: b, Key: rl.Key, KeyName: rl.KeyName, Store: store,
		Policy: policy, Counters: counters}), nil
}

func buildJWT(route config.Route, f config.Filter, deps Deps) (any, error) {
	j := f.JWT
	o := jwt.Options{
		Issuer: j.Issuer, Audiences: j.Audiences, Leeway: j.Leeway, RequireClaims: j.RequireClaims,
		Now: deps.Now, Counters: deps.Stats.For(route.Name, config.FilterJWT, jwt.Reasons...), Realm: route.Name,
		CacheSize: j.CacheSize,
	}
	if j.CacheSize > 0 {
		o.CacheLookups = deps.Lookups.For(route.Name, config.FilterJWT, jwt.CacheResults...)
	}
	for _, ch := range j.ForwardClaims {
		o.ForwardClaims = append(o.ForwardClaims, jwt.ClaimHeader{Claim: ch.Claim, Header: ch.Header})
	}
	secret, err := hs256Secret(j, deps)
	if err != nil {
		return nil, err
	}
	o.HS256 = secret
	switch {
	case j.JWKSFile != "":
		data, err := os.ReadFile(j.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwks_file: %w", err)
		}
		ks, err := jwt.ParseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("jwks_file %s: %w", j.JWKSFile, err)
		}
		o.Keys = jwt.Static{Set: ks}
	case j.JWKSURL != "":
		if deps.Lifecycle == nil {
			return nil, errors.New("jwks_url needs a Lifecycle to own its refresh goroutine")
		}
		remote := jwt.NewRemote(jwt.RemoteOptions{
			URL: j.JWKSURL, Client: deps.HTTPClient, Refresh: j.Refresh, Now: deps.Now,
			Logger: deps.Logger.Named("filter").With("route", route.Name, "filter", "jwt"),
		})
		if err := deps.Lifecycle.add(remote.Stop); err != nil {
			return nil, err
		}
		remote.Start(deps.Context)
		o.Keys = remote
	}
	return jwt.New(o), nil
}

// minHS256Secret is RFC 7518 §3.2's minimum: a key as long as the hash.
const minHS256Secret = 32

// hs256Secret reads the secret; errors name its source, never its value.
func hs256Secret(j *config.JWT, deps Deps) ([]byte, error) {
	var secret, source string
	switch {
	case j.HS256SecretFile != "":
		b, err := os.ReadFile(j.HS256SecretFile)
		if err != nil {
			return nil, fmt.Errorf("hs256_secret_file: %w", err)
		}
		secret, source = strings.TrimRight(string(b), "\r\n"), "the file "+j.HS256SecretFile
	case j.HS256SecretEnv != "":
		v, ok := deps.LookupEnv(j.HS256SecretEnv)
		if !ok {
			return nil, fmt.Errorf("hs256_secret_env: the environment variable %s is not set", j.HS256SecretEnv)
		}
		secret, source = v, "the environment variable "+j.HS256SecretEnv
	default:
		return nil, nil
	}
	if len(secret) < minHS256Secret {
		return nil, fmt.Errorf("the HS256 secret in %s has %d bytes; at least %d are required (RFC 7518 §3.2)", source, len(secret), minHS256Secret)
	}
	return []byte(secret), nil
}

// Lifecycle owns the background goroutines of the chains built with it
// (one per routing table, say). Safe for concurrent use.
type Lifecycle struct {
	mu     sync.Mutex
	stops  []func()
	closed bool
}

func (l *Lifecycle) add(stop func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("the filter lifecycle is closed")
	}
	l.stops = append(l.stops, stop)
	return nil
}

// Close stops every goroutine started for the chains and waits for them.
// Chains keep answering afterwards with what they last had (a JWKS URL's
// last key set). Safe to call more than once.
func (l *Lifecycle) Close() {
	l.mu.Lock()
	stops := l.stops
	l.stops, l.closed = nil, true
	l.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// buildCache returns the route's cache: the one Deps.Caches kept from the
// configuration before when its block is the same (a reload must not empty
// a cache), else a new one, which Deps.Caches then keeps.
func buildCache(route config.Route, f config.Filter, deps Deps) (any, error) {
	if deps.Caches != nil {
		if c := deps.Caches.get(route.Name, *f.Cache); c != nil {
			return c, nil
		}
	}
	var client redis.UniversalClient
	if rc, ok := deps.Redis.(redis.UniversalClient); ok && rc != nil {
		client = rc
	}
	if f.Cache.Store == config.CacheStoreRedis && client == nil {
		return nil, fmt.Errorf("store = \"redis\" needs the redis block")
	}
	c, err := cache.New(*f.Cache, cache.Deps{Redis: client, Logger: deps.Logger.Named("cache").With("route", route.Name)})
	if err != nil {
		return nil, err
	}
	if deps.Caches != nil {
		deps.Caches.put(route.Name, *f.Cache, c)
	}
	return c, nil
}

// Caches keeps the routes' caches across configurations, by route name and
// block. Safe for concurrent use.
type Caches struct {
	mu sync.Mutex
	m  map[string]keptCache
}

type keptCache struct {
	cfg config.Cache
	c   *cache.Filter
}

func sameCache(a, b config.Cache) bool {
	a.DefRange, b.DefRange = hcl.Range{}, hcl.Range{}
	return reflect.DeepEqual(a, b)
}

func (k *Caches) get(route string, cfg config.Cache) *cache.Filter {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kc, ok := k.m[route]; ok && sameCache(kc.cfg, cfg) {
		return kc.c
	}
	return nil
}

func (k *Caches) put(route string, cfg config.Cache, c *cache.Filter) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = make(map[string]keptCache)
	}
	k.m[route] = keptCache{cfg: cfg, c: c}
}

// Each calls fn with every kept cache, by route (for metrics).
func (k *Caches) Each(fn func(route string, c *cache.Filter)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for r, kc := range k.m {
		fn(r, kc.c)
	}
}

// Retain forgets the caches of routes that no longer have one.
func (k *Caches) Retain(keep map[string]bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for r := range k.m {
		if !keep[r] {
			delete(k.m, r)
		}
	}
}

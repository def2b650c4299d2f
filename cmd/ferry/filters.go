package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/chain"
)

// routeFilters are the filter chains of one configuration (SPEC §13). They
// are built when the configuration is loaded — so that a filter that cannot
// be built (an unreadable JWKS file, a secret that is not set) fails the
// start or the reload, never a request — and kept while it runs, across the
// table rebuilds that discovery causes.
type routeFilters struct {
	cfg    *config.Config
	chains map[string]*filter.Chain // by route name; a route without filters has none
	life   *chain.Lifecycle         // the chains' background work (JWKS refreshes)
	redis  *redis.Client            // the redis block's client; nil without one
}

// buildFilters builds cfg's chains. ctx bounds their background work; stats
// and caches outlive configurations (a route's cache whose block did not
// change is kept, not emptied, by a reload).
func buildFilters(ctx context.Context, cfg *config.Config, logger hclog.Logger, stats, lookups *filter.Stats, caches *chain.Caches) (*routeFilters, error) {
	f := &routeFilters{cfg: cfg, chains: make(map[string]*filter.Chain), life: &chain.Lifecycle{}}
	if cfg.Redis != nil {
		client, err := chain.NewRedisClient(cfg.Redis)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		f.redis = client
	}
	deps := chain.Deps{Logger: logger, Context: ctx, Lifecycle: f.life, Stats: stats, Lookups: lookups, Caches: caches}
	if f.redis != nil {
		deps.Redis = f.redis
	}
	keep := make(map[string]bool, len(cfg.Routes))
	withCache := make(map[string]bool)
	for _, r := range cfg.Routes {
		keep[r.Name] = true
		withCache[r.Name] = r.Cache != nil
		c, err := chain.Build(*r, deps)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("route %q: %w", r.Name, err)
		}
		if c != nil {
			f.chains[r.Name] = c
		}
	}
	stats.Forget(keep)
	lookups.Forget(keep)
	caches.Retain(withCache)
	return f, nil
}

// chain returns the chain of the named route; nil when it has none (or f
// is nil).
func (f *routeFilters) chain(route string) *filter.Chain {
	if f == nil {
		return nil
	}
	return f.chains[route]
}

// close stops the chains' background work and, after requests still using
// them have had time to finish, closes the Redis client.
func (f *routeFilters) close() {
	if f == nil {
		return
	}
	f.life.Close()
	if f.redis != nil {
		client := f.redis
		time.AfterFunc(redisCloseDelay, func() { client.Close() })
	}
}

// redisCloseDelay is how long a replaced configuration's Redis client
// stays open for the requests that started under it.
const redisCloseDelay = 10 * time.Second

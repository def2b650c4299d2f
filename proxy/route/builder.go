package route

import (
	"crypto/tls"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/upstream"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// Builder builds routing Tables and owns what must outlive any one table:
// each routed service's connection pools (one per instance), round-robin
// counter and retry budget. A Builder is not safe for concurrent use: one
// goroutine builds tables (and finally calls Close); the tables themselves
// are safe for concurrent use.
type Builder struct {
	reg    *health.Registry
	logger hclog.Logger
	Pools  map[string]*servicePool
	stats  statsStore // per route and service, handed to every table
	// pickers are the traffic splits' weighted pickers, by route name.
	pickers map[string]keptPicker
	// What the last Build made, for the next one to reuse
	// (builder_reuse.go): its table, its services with the inputs they
	// were built from, and per service the route chains leading to it.
	prev   *Table
	built  map[string]*builtService
	chains map[string][]chainKey
}

// servicePool is one routed service's long-lived forwarding state.
type servicePool struct {
	next   *atomic.Uint64 // round-robin counter
	budget *retryBudget
	gate   *Gate // the max_requests slots and queue
	logger hclog.Logger
	conns  map[string]*upstream.Pool // the fast lane's, by instance address
	tls    *tls.Config               // the TLS configuration conns were made with
	h2     *upstream.H2              // the HTTP/2 client of an http2 or grpc service
	// tagNext are the round-robin counters of a traffic split's backends
	// that select instances by tag.
	tagNext map[string]*atomic.Uint64
}

// NewBuilder returns a Builder that takes instance state from reg.
func NewBuilder(reg *health.Registry, logger hclog.Logger) *Builder {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Builder{reg: reg, logger: logger, Pools: make(map[string]*servicePool)}
}

// Build returns a table for routes, with per service the spec in services
// (defaults when absent) and the instances in sets. A route whose service has
// no set, or an empty one, still matches (its requests get 503). A route
// with an unusable prefix or a host and prefix already taken is logged and
// left out; configuration validation rejects both before they get here.
//
// A Build whose routes are those of the previous one patches the previous
// table: only the services whose spec or set changed, and the routes that
// lead to them, are made anew (builder_reuse.go). Any other Build indexes
// every route, still reusing each service whose inputs did not change.
func (b *Builder) Build(routes []RouteSpec, services map[string]ServiceSpec, sets map[string]*discovery.InstanceSet) *Table {
	if t := b.patch(routes, services, sets); t != nil {
		return t
	}
	return b.buildAll(routes, services, sets)
}

// buildAll indexes every route of a new table.
func (b *Builder) buildAll(routes []RouteSpec, services map[string]ServiceSpec, sets map[string]*discovery.InstanceSet) *Table {
	t := &Table{
		routes:   cloneRoutes(routes),
		hosts:    make(map[string]*hostRoutes),
		services: make(map[string]*Service),
	}
	built := make(map[string]*builtService, len(b.built))
	for _, rs := range routes {
		prefix, err := wire.CanonicalPath(rs.PathPrefix)
		if err != nil {
			b.logger.Error("route left out: bad path_prefix", "route", rs.Name, "path_prefix", rs.PathPrefix, "error", err)
			continue
		}
		if len(prefix) > 1 && prefix[len(prefix)-1] == '/' {
			prefix = prefix[:len(prefix)-1]
		}
		host := normaliseHost(rs.Host)
		hr := t.hosts[host]
		if hr == nil {
			hr = &hostRoutes{prefixes: make(map[string]*Route)}
			t.hosts[host] = hr
		}
		if !fits(hr.prefixes[prefix], len(rs.Headers) > 0) {
			b.logger.Error("route left out: another route has the same host, path_prefix and no header condition",
				"route", rs.Name, "host", host, "path_prefix", prefix)
			continue
		}
		serviceOf := func(name, tag string) *Service {
			e := built[name]
			if e == nil {
				spec, given := services[name]
				e = b.reuseOrBuild(name, spec, given, sets[name])
				built[name] = e
				t.services[name] = e.svc
			}
			return b.subsetOf(e, tag)
		}
		spec := rs
		spec.Host, spec.PathPrefix = host, prefix
		r := &Route{spec: spec, stats: b.stats.route(rs.Name)}
		if len(rs.Backends) == 0 {
			r.service = serviceOf(rs.Service, "")
		} else {
			weights := make([]int, 0, len(rs.Backends))
			total := 0
			for _, be := range rs.Backends {
				total += max(be.Weight, 0)
				weights = append(weights, be.Weight)
				r.backends = append(r.backends, serviceOf(be.Service, be.Tag))
			}
			r.service = r.backends[0]
			if total == 0 || len(r.backends) == 1 {
				r.backends = nil // one backend (or no weights): no split
			} else {
				r.picker = b.picker(rs.Name, weights)
			}
		}
		head := hr.prefixes[prefix]
		insert(&head, r)
		hr.prefixes[prefix] = head
		hr.maxLen = max(hr.maxLen, len(prefix))
	}

	for name, p := range b.Pools {
		if _, routed := t.services[name]; !routed {
			for _, cp := range p.conns {
				cp.CloseIdle(true)
			}
			p.closeH2()
			delete(b.Pools, name)
		}
	}
	for name := range b.pickers {
		if !slices.ContainsFunc(routes, func(rs RouteSpec) bool { return rs.Name == name && len(rs.Backends) > 1 }) {
			delete(b.pickers, name)
		}
	}
	b.stats.retain(t)
	b.remember(t, built)
	return t
}

// service builds one service of a new table, reusing (or creating) its
// long-lived pool.
func (b *Builder) service(name string, spec ServiceSpec, given bool, set *discovery.InstanceSet) *Service {
	spec = withDefaults(name, spec, given)
	p := b.Pools[name]
	if p == nil {
		p = &servicePool{next: newRoundRobinCounter(), budget: new(retryBudget), logger: b.logger.With("service", name),
			conns: make(map[string]*upstream.Pool)}
		b.Pools[name] = p
	}

	svc := &Service{name: name, spec: spec, Budget: p.budget, Logger: p.logger}
	svc.stats = b.stats.service(name)
	if g := p.gate; g == nil || g.max != int64(spec.MaxRequests) || g.maxPending != int64(spec.MaxPendingRequests) || g.timeout != spec.QueueTimeout {
		// Requests holding a slot of the old gate give it back there.
		p.gate = NewGate(spec.MaxRequests, spec.MaxPendingRequests, spec.QueueTimeout, svc.stats)
	}
	if p.gate.max > 0 {
		svc.Gate = p.gate // nil otherwise: a request then reads nothing of it
	}
	p.upstreamClients(&spec) // upstream_clients.go
	svc.H2 = p.h2
	inSet := make(map[string]bool)
	if set != nil {
		svc.known, svc.stale = set.Known, set.Stale
		svc.upstreams = make([]*Upstream, 0, len(set.Instances))
		for _, inst := range set.Instances {
			if inst.Address == "" || inst.Port <= 0 || inst.Port > 65535 {
				b.logger.Warn("instance left out: no usable address", "service", name,
					"instance_id", inst.ID, "address", inst.Address, "port", inst.Port)
				continue
			}
			addr := inst.HostPort()
			cp := p.conns[addr]
			if cp == nil {
				cp = p.newPool(addr, spec.TLS)
				p.conns[addr] = cp
			}
			inSet[addr] = true
			svc.upstreams = append(svc.upstreams, &Upstream{
				instance: inst,
				addr:     addr,
				Health:   b.reg.State(name, inst.Key()),
				Pool:     cp,
				stats:    b.stats.instance(name, inst.Key()),
			})
		}
	}
	left := false
	for addr, cp := range p.conns {
		if !inSet[addr] {
			cp.CloseIdle(true) // requests in flight close theirs when done
			delete(p.conns, addr)
			left = true
		}
	}
	if left && p.h2 != nil {
		// The transport cannot close one instance's connections: the
		// idle ones of every instance close, and reconnect on demand.
		p.h2.CloseIdle()
	}
	bal, ok := NewBalancer(spec.Balance, svc.upstreams, p.next)
	if !ok {
		b.logger.Warn("unknown balance policy, using round_robin", "service", name, "balance", spec.Balance)
		svc.spec.Balance = balanceRoundRobin
	}
	svc.Balancer = bal
	return svc
}

// withDefaults fills what the spec leaves zero. A service routed without
// any spec also gets the default retries; with a spec, 0 retries is a choice.
func withDefaults(name string, spec ServiceSpec, given bool) ServiceSpec {
	if !given {
		spec.Retries = DefaultRetries
	}
	spec.Name = name
	if spec.Balance == "" {
		spec.Balance = DefaultBalance
	}
	if spec.ConnectTimeout <= 0 {
		spec.ConnectTimeout = DefaultConnectTimeout
	}
	if spec.ResponseTimeout <= 0 {
		spec.ResponseTimeout = DefaultResponseTimeout
	}
	if spec.QueueTimeout <= 0 {
		spec.QueueTimeout = DefaultQueueTimeout
	}
	if spec.Outlier.BaseEjectionTime <= 0 {
		spec.Outlier.BaseEjectionTime = DefaultBaseEjectionTime
	}
	spec.Retries = max(spec.Retries, 0)
	return spec
}

// Close closes the idle upstream connections of every pool. Call it once no
// request is in flight any more (after the server has shut down); tables
// built before keep working but reconnect.
func (b *Builder) Close() {
	for _, p := range b.Pools {
		for _, cp := range p.conns {
			cp.CloseIdle(false)
		}
		if p.h2 != nil {
			p.h2.CloseIdle()
		}
	}
}

// picker returns the route's weighted picker, the same across tables while
// its weights stay the same, so that the shares hold over every cycle of
// the schedule however often discovery rebuilds the table.
func (b *Builder) picker(route string, weights []int) *picker {
	if k, ok := b.pickers[route]; ok && slices.Equal(k.weights, weights) {
		return k.p
	}
	if b.pickers == nil {
		b.pickers = make(map[string]keptPicker)
	}
	p := newPicker(weights)
	b.pickers[route] = keptPicker{weights: weights, p: p}
	return p
}

type keptPicker struct {
	weights []int
	p       *picker
}

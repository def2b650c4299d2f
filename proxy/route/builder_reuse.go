package route

import (
	"maps"
	"slices"

	"github.com/ferry-proxy/ferry/discovery"
)

// Rebuilding in proportion to what changed. Discovery republishes one
// service's set at a time, and at a thousand routed services remaking every
// Service, Upstream and balancer on each change cost milliseconds and most
// of ferry's CPU under churn (docs/benchmarks.md, issue 13). A Service
// depends only on its spec and its InstanceSet (immutable once published),
// and the long-lived state it points to (pools, gate, budget, counters,
// health) is the Builder's either way, so a Service whose inputs are the
// same is the same: the next table shares it. Tables stay immutable: a
// patched table is a new Table sharing the unchanged parts of the previous
// one, and no object a published table holds is ever modified.

// builtService is one service of the last table with the inputs it was
// built from.
type builtService struct {
	svc   *Service
	spec  ServiceSpec // as given to Build, before defaults
	given bool
	set   *discovery.InstanceSet
	// subsets are svc's traffic-split backends selecting by tag, by tag;
	// they are svc's instances and go with it.
	subsets map[string]*Service
}

// chainKey locates one route chain of a table: a host and a prefix.
type chainKey struct{ host, prefix string }

// sameInputs reports whether a service built from e's inputs would be e's.
func (e *builtService) sameInputs(spec ServiceSpec, given bool, set *discovery.InstanceSet) bool {
	return e.given == given && e.spec == spec && sameSet(e.set, set)
}

// sameSet reports whether two sets build the same Service: the same set, or
// one republished with only its index or last contact refreshed (discovery
// then shares the previous set's instance slice).
func sameSet(a, b *discovery.InstanceSet) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Known != b.Known || a.Stale != b.Stale || len(a.Instances) != len(b.Instances) {
		return false
	}
	return len(a.Instances) == 0 || &a.Instances[0] == &b.Instances[0]
}

// reuseOrBuild returns the last table's service name when its inputs are
// the same, else a service built from them.
func (b *Builder) reuseOrBuild(name string, spec ServiceSpec, given bool, set *discovery.InstanceSet) *builtService {
	if e := b.built[name]; e != nil && e.sameInputs(spec, given, set) {
		e.set = set
		return e
	}
	return &builtService{svc: b.service(name, spec, given, set), spec: spec, given: given, set: set}
}

// subsetOf returns e's service, or its part selecting tag (see subset),
// made once per service built.
func (b *Builder) subsetOf(e *builtService, tag string) *Service {
	if tag == "" {
		return e.svc
	}
	if sub := e.subsets[tag]; sub != nil {
		return sub
	}
	if e.subsets == nil {
		e.subsets = make(map[string]*Service)
	}
	sub := b.subset(e.svc, tag)
	e.subsets[tag] = sub
	return sub
}

// remember keeps what Build made of t for the next Build.
func (b *Builder) remember(t *Table, built map[string]*builtService) {
	b.prev, b.built = t, built
	b.chains = make(map[string][]chainKey, len(built))
	for host, hr := range t.hosts {
		for prefix, head := range hr.prefixes {
			k := chainKey{host, prefix}
			for r := head; r != nil; r = r.next {
				b.addChain(r.service.name, k)
				for _, s := range r.backends {
					b.addChain(s.name, k)
				}
			}
		}
	}
}

func (b *Builder) addChain(service string, k chainKey) {
	ks := b.chains[service]
	if !slices.Contains(ks, k) {
		b.chains[service] = append(ks, k)
	}
}

// patch returns the last table patched for what changed in services and
// sets, or nil when routes are not the last table's (Build then indexes
// every route). Its cost is a comparison per routed service and route, and
// work in proportion to the services changed and the routes leading to
// them.
func (b *Builder) patch(routes []RouteSpec, services map[string]ServiceSpec, sets map[string]*discovery.InstanceSet) *Table {
	if b.prev == nil || !slices.EqualFunc(routes, b.prev.routes, sameRouteSpec) {
		return nil
	}
	var changed []string
	for name, e := range b.built {
		spec, given := services[name]
		set := sets[name]
		if e.sameInputs(spec, given, set) {
			e.set = set
			continue
		}
		changed = append(changed, name)
	}
	if len(changed) == 0 {
		return b.prev // immutable: serving it again is serving the same routes
	}
	if 2*len(changed) > len(b.built) {
		return nil // most changed: indexing every route afresh is no dearer
	}
	prev := b.prev
	t := &Table{routes: prev.routes, hosts: maps.Clone(prev.hosts), services: maps.Clone(prev.services)}
	redo := make(map[chainKey]bool)
	for _, name := range changed {
		old := b.built[name]
		spec, given := services[name]
		e := &builtService{svc: b.service(name, spec, given, sets[name]), spec: spec, given: given, set: sets[name]}
		b.built[name] = e
		t.services[name] = e.svc
		b.stats.forgetInstances(old.svc, e.svc)
		for _, k := range b.chains[name] {
			redo[k] = true
		}
	}
	copied := make(map[string]bool) // hosts whose hostRoutes t owns
	for k := range redo {
		hr := t.hosts[k.host]
		if !copied[k.host] {
			hr = &hostRoutes{prefixes: maps.Clone(hr.prefixes), maxLen: hr.maxLen}
			t.hosts[k.host] = hr
			copied[k.host] = true
		}
		hr.prefixes[k.prefix] = b.relink(hr.prefixes[k.prefix])
	}
	b.prev = t
	return t
}

// relink returns a copy of the chain at head whose routes lead to the
// current services (b.built): the previous table keeps the originals.
func (b *Builder) relink(head *Route) *Route {
	var chain []*Route
	for r := head; r != nil; r = r.next {
		chain = append(chain, r)
	}
	var next *Route
	for i := len(chain) - 1; i >= 0; i-- {
		r := *chain[i]
		r.service = b.current(r.service)
		if r.backends != nil {
			backends := make([]*Service, len(r.backends))
			for j, s := range r.backends {
				backends[j] = b.current(s)
			}
			r.backends = backends
		}
		r.next = next
		next = &r
	}
	return next
}

// current returns the service (or tagged part) of the current build that
// s, of an earlier one, stands for.
func (b *Builder) current(s *Service) *Service {
	return b.subsetOf(b.built[s.name], s.tag)
}

// sameRouteSpec reports whether two route specs are equal. Filters are
// compared by pointer: a chain is built once per configuration load.
func sameRouteSpec(a, b RouteSpec) bool {
	return a.Name == b.Name && a.Host == b.Host && a.PathPrefix == b.PathPrefix && a.Service == b.Service &&
		a.StripPrefix == b.StripPrefix && a.MaxBodyBytes == b.MaxBodyBytes && a.Filters == b.Filters &&
		slices.Equal(a.Backends, b.Backends) &&
		slices.EqualFunc(a.Headers, b.Headers, func(x, y HeaderCond) bool {
			return x.Name == y.Name && slices.Equal(x.Values, y.Values)
		})
}

// cloneRoutes copies routes deeply enough that a caller modifying its
// slices afterwards cannot make the next Build take changed routes for the
// same.
func cloneRoutes(routes []RouteSpec) []RouteSpec {
	out := slices.Clone(routes)
	for i := range out {
		out[i].Backends = slices.Clone(out[i].Backends)
		out[i].Headers = slices.Clone(out[i].Headers)
		for j := range out[i].Headers {
			out[i].Headers[j].Values = slices.Clone(out[i].Headers[j].Values)
		}
	}
	return out
}

// forgetInstances drops the stats of old's instances that next, the same
// service rebuilt, no longer has (what retain does for a whole table).
func (s *statsStore) forgetInstances(old, next *Service) {
	kept := make(map[*InstanceStats]bool, len(next.upstreams))
	for _, up := range next.upstreams {
		kept[up.stats] = true
	}
	for _, up := range old.upstreams {
		if !kept[up.stats] {
			delete(s.instances, instanceKey{old.name, up.instance.Key()})
		}
	}
}

// ChangedServices returns the names of the services next does not share
// with prev: rebuilt, newly routed, or no longer routed. With a nil prev it
// is every service of next. It lets what follows a rebuild redo only what
// changed; its cost is a comparison per service.
func ChangedServices(prev, next *Table) []string {
	var out []string
	for name, s := range next.services {
		if prev == nil || prev.services[name] != s {
			out = append(out, name)
		}
	}
	if prev != nil {
		for name := range prev.services {
			if next.services[name] == nil {
				out = append(out, name)
			}
		}
	}
	return out
}

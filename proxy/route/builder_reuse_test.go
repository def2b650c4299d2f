package route

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
)

// reuseSet is a known set of service name whose instances listen on ports,
// each tagged with tags[i] when given.
func reuseSet(name string, ports []int, tags ...string) *discovery.InstanceSet {
	set := &discovery.InstanceSet{Service: name, Known: true}
	for i, port := range ports {
		inst := discovery.Instance{ID: name + "-" + strconv.Itoa(port), Node: "n", Address: "127.0.0.1", Port: port, Weight: 1}
		if i < len(tags) {
			inst.Tags = []string{tags[i]}
		}
		set.Instances = append(set.Instances, inst)
	}
	return set
}

// reuseRoutes: a plain route per service, a header-conditioned route to b
// at a's prefix, and a canary split of c by tag.
func reuseRoutes() []RouteSpec {
	return []RouteSpec{
		{Name: "a", PathPrefix: "/a", Service: "a"},
		{Name: "a-canary", PathPrefix: "/a", Service: "b", Headers: []HeaderCond{{Name: "X-Canary", Values: []string{"1"}}}},
		{Name: "b", PathPrefix: "/b", Service: "b"},
		{Name: "c", PathPrefix: "/c", Service: "c", Backends: []Backend{
			{Service: "c", Tag: "v1", Weight: 90}, {Service: "c", Tag: "v2", Weight: 10}}},
	}
}

func addrs(s *Service) []string {
	var out []string
	for _, u := range s.Upstreams() {
		out = append(out, u.Addr())
	}
	return out
}

func match(t *testing.T, tab *Table, path string, h http.Header) *Route {
	t.Helper()
	var hs Headers
	if h != nil {
		hs = fakeHeaders(h)
	}
	r := tab.MatchRequest("", path, hs)
	if r == nil {
		t.Fatalf("%s %v: no route", path, h)
	}
	return r
}

// TestRebuildReusesUnchanged: after one service's set changed, the next
// table shares every other service and every route not leading to it,
// reflects the change everywhere it leads (header-conditioned routes
// included), and leaves the previous table as it was.
func TestRebuildReusesUnchanged(t *testing.T) {
	b := NewBuilder(health.NewRegistry(), nil)
	defer b.Close()
	routes := reuseRoutes()
	sets := map[string]*discovery.InstanceSet{
		"a": reuseSet("a", []int{1001, 1002}),
		"b": reuseSet("b", []int{2001}),
		"c": reuseSet("c", []int{3001, 3002, 3003}, "v1", "v1", "v2"),
	}
	t1 := b.Build(routes, nil, sets)
	canary := http.Header{"X-Canary": {"1"}}
	r1a, r1canary, r1b, r1c := match(t, t1, "/a/x", nil), match(t, t1, "/a/x", canary), match(t, t1, "/b", nil), match(t, t1, "/c", nil)

	// b deploys: a new instance replaces the old one.
	sets = maps.Clone(sets)
	sets["b"] = reuseSet("b", []int{2002})
	t2 := b.Build(routes, nil, sets)
	if t2 == t1 {
		t.Fatal("a changed set gave the same table")
	}
	if t2.Service("a") != t1.Service("a") || t2.Service("c") != t1.Service("c") {
		t.Error("an unchanged service was rebuilt")
	}
	if t2.Service("b") == t1.Service("b") || !slices.Equal(addrs(t2.Service("b")), []string{"127.0.0.1:2002"}) {
		t.Errorf("b not rebuilt with its new instance: %v", addrs(t2.Service("b")))
	}
	if match(t, t2, "/c", nil) != r1c {
		t.Error("a route whose services did not change was remade")
	}
	r2b, r2a, r2canary := match(t, t2, "/b", nil), match(t, t2, "/a/x", nil), match(t, t2, "/a/x", canary)
	if r2b == r1b || r2b.Service() != t2.Service("b") {
		t.Error("the route to b does not lead to its new service")
	}
	// The chain at /a holds a route to b: both its routes are new, the
	// plain one still to a's unchanged service.
	if r2canary.Spec().Name != "a-canary" || r2canary.Service() != t2.Service("b") {
		t.Errorf("header-conditioned route: %s to %v", r2canary.Spec().Name, addrs(r2canary.Service()))
	}
	if r2a.Spec().Name != "a" || r2a.Service() != t1.Service("a") {
		t.Error("the plain route at /a lost its service")
	}
	// The previous table is untouched: requests in flight keep it.
	if match(t, t1, "/a/x", canary) != r1canary || r1canary.Service() != t1.Service("b") ||
		match(t, t1, "/a/x", nil) != r1a || !slices.Equal(addrs(r1b.Service()), []string{"127.0.0.1:2001"}) {
		t.Error("the previous table changed")
	}

	// c's canary gets a second v2 instance: the split's backends follow.
	sets = maps.Clone(sets)
	sets["c"] = reuseSet("c", []int{3001, 3002, 3003, 3004}, "v1", "v1", "v2", "v2")
	t3 := b.Build(routes, nil, sets)
	bes := match(t, t3, "/c", nil).backends
	if len(bes) != 2 || bes[0].Tag() != "v1" || bes[1].Tag() != "v2" {
		t.Fatalf("split backends: %v", bes)
	}
	if !slices.Equal(addrs(bes[0]), []string{"127.0.0.1:3001", "127.0.0.1:3002"}) || !slices.Equal(addrs(bes[1]), []string{"127.0.0.1:3003", "127.0.0.1:3004"}) {
		t.Errorf("split backends' instances: %v, %v", addrs(bes[0]), addrs(bes[1]))
	}
	if old := r1c.backends; len(addrs(old[1])) != 1 {
		t.Error("the previous table's split changed")
	}
	if t3.Service("a") != t1.Service("a") || t3.Service("b") != t2.Service("b") {
		t.Error("services other than c rebuilt")
	}

	// Nothing changed: the same table, immutable, serves on. A set
	// republished with only its index refreshed shares its instances.
	sets = maps.Clone(sets)
	refreshed := *sets["a"]
	refreshed.Index++
	sets["a"] = &refreshed
	if t4 := b.Build(routes, nil, sets); t4 != t3 {
		t.Error("a Build with nothing changed made a new table")
	}
	// Stale changes the service.
	stale := refreshed
	stale.Stale = true
	sets = maps.Clone(sets)
	sets["a"] = &stale
	if t5 := b.Build(routes, nil, sets); !t5.Service("a").Stale() || t5.Service("b") != t2.Service("b") {
		t.Error("a set turned stale not reflected, or others rebuilt")
	}
}

// TestRebuildSpecsAndRoutes: a spec change rebuilds that service only; added
// and removed routes take the full path and still reuse every unchanged
// service; a removed service gives up its pools.
func TestRebuildSpecsAndRoutes(t *testing.T) {
	b := NewBuilder(health.NewRegistry(), nil)
	defer b.Close()
	routes := reuseRoutes()
	sets := map[string]*discovery.InstanceSet{
		"a": reuseSet("a", []int{1001}), "b": reuseSet("b", []int{2001}),
		"c": reuseSet("c", []int{3001, 3002}, "v1", "v2"), "d": reuseSet("d", []int{4001}),
	}
	specs := map[string]ServiceSpec{"a": {ResponseTimeout: time.Second}}
	t1 := b.Build(routes, specs, sets)

	specs = map[string]ServiceSpec{"a": {ResponseTimeout: 2 * time.Second}}
	t2 := b.Build(routes, specs, sets)
	if t2.Service("a") == t1.Service("a") || t2.Service("a").Spec().ResponseTimeout != 2*time.Second {
		t.Error("a spec change not applied")
	}
	if t2.Service("a").Upstreams()[0].Pool != t1.Service("a").Upstreams()[0].Pool {
		t.Error("a timeout change replaced the instance's connections")
	}
	if t2.Service("b") != t1.Service("b") || t2.Service("c") != t1.Service("c") {
		t.Error("services whose spec did not change were rebuilt")
	}

	routes = append(reuseRoutes(), RouteSpec{Name: "d", PathPrefix: "/d", Service: "d"})
	t3 := b.Build(routes, specs, sets)
	if t3.Service("d") == nil || match(t, t3, "/d", nil).Service() != t3.Service("d") {
		t.Fatal("an added route is not routed")
	}
	if t3.Service("a") != t2.Service("a") || t3.Service("b") != t2.Service("b") || t3.Service("c") != t2.Service("c") {
		t.Error("adding a route rebuilt the other services")
	}
	if bes := match(t, t3, "/c", nil).backends; bes[0] != match(t, t2, "/c", nil).backends[0] {
		t.Error("a split's backend of an unchanged service was rebuilt")
	}

	dPool := t3.Service("d").Upstreams()[0].Pool
	routes = reuseRoutes()
	routes[2].PathPrefix = "/bee" // changed and removed at once
	t4 := b.Build(routes, specs, sets)
	if t4.Service("d") != nil || b.Pools["d"] != nil || !dPool.Closed {
		t.Error("a service no longer routed kept its pool")
	}
	if t4.MatchRequest("", "/b", nil) != nil || match(t, t4, "/bee", nil).Service() != t3.Service("b") {
		t.Error("a changed route prefix not applied, or its service rebuilt")
	}
}

// TestRebuildNothingLeaks: many deploys, one service at a time, leave
// exactly the live instances' pools, stats and health, every replaced
// pool closed and no goroutine behind.
func TestRebuildNothingLeaks(t *testing.T) {
	defer goleak.VerifyNone(t)
	const services = 20
	reg := health.NewRegistry()
	b := NewBuilder(reg, nil)
	var routes []RouteSpec
	sets := make(map[string]*discovery.InstanceSet)
	name := func(s int) string { return "s" + strconv.Itoa(s) }
	for s := range services {
		routes = append(routes, RouteSpec{Name: name(s), PathPrefix: "/" + name(s), Service: name(s)})
		sets[name(s)] = reuseSet(name(s), []int{10000 + 10*s, 10001 + 10*s})
	}
	b.Build(routes, nil, sets)
	for i := range 500 {
		s := i % services
		sets = maps.Clone(sets)
		old := b.prev.Service(name(s)).Upstreams()[0].Pool
		// a deploy: the first instance moves to a new port
		sets[name(s)] = reuseSet(name(s), []int{20000 + 1000*s + i, 10001 + 10*s})
		tab := b.Build(routes, nil, sets)
		if !old.Closed {
			t.Fatalf("deploy %d: the replaced instance's pool is open", i)
		}
		if got := addrs(tab.Service(name(s))); got[0] != "127.0.0.1:"+strconv.Itoa(20000+1000*s+i) {
			t.Fatalf("deploy %d: %v", i, got)
		}
	}
	for n, p := range b.Pools {
		if len(p.conns) != 2 {
			t.Errorf("%s: %d pools, want 2", n, len(p.conns))
		}
	}
	if len(b.Pools) != services || len(b.built) != services || len(b.stats.instances) != 2*services || len(b.stats.services) != services {
		t.Errorf("kept: %d pools, %d built, %d instance stats, %d service stats", len(b.Pools), len(b.built), len(b.stats.instances), len(b.stats.services))
	}
	b.Close()
}

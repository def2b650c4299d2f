package proxy

import (
	"reflect"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/route"
)

func TestBuilderDefaultsAndSpecs(t *testing.T) {
	b := route.NewBuilder(health.NewRegistry(), testLogger(t))
	defer b.Close()
	routes := []route.RouteSpec{
		{Name: "a", PathPrefix: "/a", Service: "plain"},
		{Name: "b", PathPrefix: "/b", Service: "tuned"},
		{Name: "c", PathPrefix: "/c", Service: "odd"},
	}
	specs := map[string]route.ServiceSpec{
		"tuned": {Name: "tuned", Balance: "least_request", ConnectTimeout: time.Second, ResponseTimeout: 5 * time.Second, Retries: 0},
		"odd":   {Name: "odd", Balance: "fastest"},
	}
	tab := b.Build(routes, specs, nil)
	ejection30s := health.Outlier{BaseEjectionTime: 30 * time.Second}

	want := map[string]route.ServiceSpec{
		"plain": {Name: "plain", Balance: "round_robin", ConnectTimeout: 2 * time.Second, ResponseTimeout: 30 * time.Second, Retries: 2, Outlier: ejection30s, QueueTimeout: route.DefaultQueueTimeout},
		"tuned": {Name: "tuned", Balance: "least_request", ConnectTimeout: time.Second, ResponseTimeout: 5 * time.Second, Retries: 0, Outlier: ejection30s, QueueTimeout: route.DefaultQueueTimeout},
		"odd":   {Name: "odd", Balance: "round_robin", ConnectTimeout: 2 * time.Second, ResponseTimeout: 30 * time.Second, Retries: 0, Outlier: ejection30s, QueueTimeout: route.DefaultQueueTimeout},
	}
	for name, w := range want {
		s := tab.Service(name)
		if s == nil {
			t.Fatalf("service %q missing", name)
		}
		if got := *s.Spec(); got != w {
			t.Errorf("service %q: got %+v, want %+v", name, got, w)
		}
	}
	if _, ok := tab.Service("odd").Balancer.(route.RoundRobin); !ok {
		t.Errorf("unknown policy: got %T, want roundRobin", tab.Service("odd").Balancer)
	}
	if got := tab.Routes(); !reflect.DeepEqual(got, routes) {
		t.Errorf("Routes() = %+v, want %+v", got, routes)
	}
	if got := len(tab.Services()); got != 3 {
		t.Errorf("Services(): got %d, want 3", got)
	}
}

func TestBuilderKeepsTransportAndCounters(t *testing.T) {
	reg := health.NewRegistry()
	b := route.NewBuilder(reg, testLogger(t))
	defer b.Close()
	routes := []route.RouteSpec{{Name: "u", PathPrefix: "/", Service: "user"}}
	spec := map[string]route.ServiceSpec{"user": {Balance: "round_robin"}}
	set := &discovery.InstanceSet{Service: "user", Known: true, Instances: []discovery.Instance{
		{ID: "a", Node: "n", Address: "10.0.0.1", Port: 1, Weight: 1},
		{ID: "b", Node: "n", Address: "10.0.0.2", Port: 2, Weight: 1},
		{ID: "c", Node: "n", Address: "10.0.0.3", Port: 3, Weight: 1},
	}}
	sets := map[string]*discovery.InstanceSet{"user": set}

	t1 := b.Build(routes, spec, sets)
	s1 := t1.Service("user")
	if got := s1.Balancer.Pick(s1.Upstreams(), nil).Addr(); got != "10.0.0.1:1" {
		t.Fatalf("first pick: got %s", got)
	}

	t2 := b.Build(routes, spec, sets)
	s2 := t2.Service("user")
	if s2.Upstreams()[0].Pool != s1.Upstreams()[0].Pool {
		t.Error("an instance's connection pool replaced across builds")
	}
	if s2.Budget != s1.Budget {
		t.Error("retry budget replaced across builds")
	}
	if got := s2.Balancer.Pick(s2.Upstreams(), nil).Addr(); got != "10.0.0.2:2" {
		t.Errorf("round robin restarted across builds: got %s, want 10.0.0.2:2", got)
	}
	// The same instance keeps its health state.
	if s2.Upstreams()[0].Health != reg.State("user", "n/a") || s1.Upstreams()[0].Health != s2.Upstreams()[0].Health {
		t.Error("instance state not taken from the registry")
	}

	spec["user"] = route.ServiceSpec{ResponseTimeout: time.Second}
	s3 := b.Build(routes, spec, sets).Service("user")
	if s3.Upstreams()[0].Pool != s1.Upstreams()[0].Pool || s3.Spec().ResponseTimeout != time.Second {
		t.Error("a timeout change must apply at once and keep the instance's connections")
	}

	// A service no longer routed gives up its pool.
	b.Build([]route.RouteSpec{{Name: "o", PathPrefix: "/", Service: "order"}}, nil, nil)
	if _, ok := b.Pools["user"]; ok {
		t.Error("pool of an unrouted service kept")
	}
	if !s1.Upstreams()[0].Pool.Closed {
		t.Error("the pools of an unrouted service stay open")
	}
}

func TestBuilderSetFlagsAndBadInput(t *testing.T) {
	b := route.NewBuilder(health.NewRegistry(), testLogger(t))
	defer b.Close()
	sets := map[string]*discovery.InstanceSet{
		"user": {Service: "user", Known: true, Stale: true, Instances: []discovery.Instance{
			{ID: "ok", Node: "n", Address: "10.0.0.1", Port: 80},
			{ID: "noaddr", Node: "n", Port: 80},
			{ID: "noport", Node: "n", Address: "10.0.0.2"},
		}},
	}
	tab := b.Build([]route.RouteSpec{
		{Name: "users", PathPrefix: "/api/user/", Service: "user"}, // trailing slash trimmed
		{Name: "dup", PathPrefix: "/api/user", Service: "other"},   // same host and prefix: left out
		{Name: "bad", PathPrefix: "/a%2Fb", Service: "other"},      // not a path: left out
		{Name: "none", Host: "Example.COM:80", PathPrefix: "/", Service: "empty"},
	}, nil, sets)

	r := tab.Match("", "/api/user/1")
	if r == nil || r.Spec().Name != "users" || r.Spec().PathPrefix != "/api/user" {
		t.Fatalf("got route %+v, want users with prefix /api/user", r)
	}
	s := r.Service()
	if !s.Known() || !s.Stale() {
		t.Errorf("Known, Stale = %v, %v; want true, true", s.Known(), s.Stale())
	}
	if got := len(s.Upstreams()); got != 1 || s.Upstreams()[0].Addr() != "10.0.0.1:80" || s.Upstreams()[0].Instance().ID != "ok" {
		t.Errorf("got %d upstreams, want only 10.0.0.1:80", got)
	}
	if tab.Service("other") != nil {
		t.Error("service of left-out routes is in the table")
	}
	r = tab.Match("example.com", "/x")
	if r == nil || r.Spec().Host != "example.com" || r.Service().Known() || len(r.Service().Upstreams()) != 0 {
		t.Fatalf("route without a set: got %+v", r)
	}
}

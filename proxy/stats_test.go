package proxy

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/route"

	"github.com/ferry-proxy/ferry/proxy/core"
)

func TestClassOf(t *testing.T) {
	for _, tc := range []struct{ status, want int }{
		{100, 0}, {101, 0}, {200, 1}, {204, 1}, {302, 2}, {404, 3}, {499, 3}, {500, 4}, {504, 4},
		{0, 0}, {99, 0}, {600, 4}, {999, 4},
	} {
		if got := route.ClassOf(tc.status); got != tc.want {
			t.Errorf("classOf(%d): got %d, want %d", tc.status, got, tc.want)
		}
	}
}

// TestStatsCountRequests drives real requests through a Handler and checks
// the counters: classes per route, attempts and retries per service, and the
// reasons of requests without a route.
func TestStatsCountRequests(t *testing.T) {
	f := newFixture(t, "text")
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/user/fail" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	dead := deadAddr(t)
	routes := []route.RouteSpec{
		{Name: "users", PathPrefix: "/api/user", Service: "user"},
		{Name: "orders", PathPrefix: "/api/order", Service: "order"},
		{Name: "empty", PathPrefix: "/empty", Service: "none"},
	}
	// order: a refused instance first, so that the first request retries
	// on the live one (round robin starts at the first instance).
	f.route(routes, nil,
		setOf(t, "user", addr(ok)),
		setOf(t, "order", dead, addr(ok)),
		&discovery.InstanceSet{Service: "none", Known: true})

	for range 3 {
		if resp, _ := f.get("/api/user/1"); resp.StatusCode != 200 {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
	}
	f.get("/api/user/fail")
	if resp, _ := f.get("/api/order/1"); resp.StatusCode != 200 {
		t.Fatalf("order: got %d, want 200 after a retry", resp.StatusCode)
	}
	f.get("/empty")   // 503: no instance
	f.get("/nowhere") // 404
	f.get("/a/%2e%2e/%2fx")
	req, _ := http.NewRequest(http.MethodConnect, f.front.URL, nil)
	req.URL.Opaque = "example.com:443"
	req.Host = "example.com:443"
	f.do(req)

	tab := f.handler.Table()
	byRoute := map[string]*route.RouteStats{}
	tab.EachRoute(func(r *route.Route) { byRoute[r.Spec().Name] = r.Stats() })
	// The fast lane counts a request after its response reached the client.
	waitFor(t, "the counts of the last requests", func() bool {
		return byRoute["users"].Requests(1)+byRoute["users"].Requests(4) == 4 && byRoute["orders"].Requests(1) == 1
	})
	check := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %d, want %d", what, got, want)
		}
	}
	check("users 2xx", byRoute["users"].Requests(1), 3)
	check("users 5xx", byRoute["users"].Requests(4), 1)
	check("users 4xx", byRoute["users"].Requests(3), 0)
	check("orders 2xx", byRoute["orders"].Requests(1), 1)
	check("empty 5xx", byRoute["empty"].Requests(4), 1)
	durs := byRoute["users"].Durations().Snapshot()
	check("users duration count", durs.Count(), 4)
	if durs.Sum <= 0 || durs.Sum > 40*time.Second {
		t.Errorf("implausible duration sum %v for 4 requests", durs.Sum)
	}
	check("users bytes", byRoute["users"].Bytes(), 3*2) // "ok" three times, the 500 empty

	// Per instance: the refused order instance failed once; the live one
	// answered 4 user requests (one 500) and 1 order request.
	for _, up := range tab.Service("order").Upstreams() {
		is := up.Stats()
		if up.Addr() == dead {
			check("dead instance failed", is.Failed(), 1)
			check("dead instance answers", is.Answers(1), 0)
		} else {
			check("order instance 2xx", is.Answers(1), 1)
			check("order instance bytes", is.Bytes(), 2)
		}
	}
	uis := tab.Service("user").Upstreams()[0].Stats()
	check("user instance 2xx", uis.Answers(1), 3)
	check("user instance 5xx", uis.Answers(4), 1)
	check("user instance attempt durations", uis.Durations().Snapshot().Count(), 4)
	check("user attempt durations", tab.Service("user").Stats().AttemptDurations().Snapshot().Count(), 4)

	check("user attempts", tab.Service("user").Stats().Attempts(), 4)
	check("user retries", tab.Service("user").Stats().Retries(), 0)
	check("order attempts", tab.Service("order").Stats().Attempts(), 2)
	check("order retries", tab.Service("order").Stats().Retries(), 1)
	check("order ejections (refused)", tab.Service("order").Stats().Ejections(), 1)
	check("none attempts", tab.Service("none").Stats().Attempts(), 0)

	hs := f.handler.Stats()
	check("no_route", hs.Unrouted(core.UnroutedNoRoute), 1)
	check("bad_request", hs.Unrouted(core.UnroutedBadRequest), 1)
	check("method_not_allowed", hs.Unrouted(core.UnroutedMethodNotAllowed), 1)

	for _, s := range tab.Services() {
		if s.InFlight() != 0 {
			t.Errorf("service %s: %d in flight after every request ended", s.Name(), s.InFlight())
		}
	}
	if up := tab.Service("user").Upstreams()[0]; up.State() == nil {
		t.Errorf("Upstream.State() is nil for a table built over a health.Registry")
	}
}

// TestStatsSurviveRebuilds checks that counters are long-lived: a new table
// keeps a route's and a service's counters, and a removed route starts over.
func TestStatsSurviveRebuilds(t *testing.T) {
	b := route.NewBuilder(health.NewRegistry(), testLogger(t))
	defer b.Close()
	users := route.RouteSpec{Name: "users", PathPrefix: "/api/user", Service: "user"}
	orders := route.RouteSpec{Name: "orders", PathPrefix: "/api/order", Service: "order"}
	t1 := b.Build([]route.RouteSpec{users, orders}, nil, nil)
	r1 := t1.Match("", "/api/user/1")
	route.RecordRequest(r1, nil, 200, 10, time.Millisecond, 1)
	t1.Service("order").Stats().Ejected()

	t2 := b.Build([]route.RouteSpec{users, orders}, nil, nil)
	if got := t2.Match("", "/api/user/1").Stats(); got != r1.Stats() || got.Requests(1) != 1 {
		t.Errorf("route stats not carried over to the next table")
	}
	if got := t2.Service("order").Stats().Ejections(); got != 1 {
		t.Errorf("service stats: got %d ejections, want 1 carried over", got)
	}

	b.Build([]route.RouteSpec{users}, nil, nil) // orders goes away…
	t4 := b.Build([]route.RouteSpec{users, orders}, nil, nil)
	if got := t4.Service("order").Stats().Ejections(); got != 0 {
		t.Errorf("a service routed again: got %d ejections, want a fresh 0", got)
	}
	if got := t4.Match("", "/api/user/1").Stats(); got != r1.Stats() {
		t.Errorf("users' stats replaced although the route stayed")
	}
}

// benchExchange returns an exchange as a proxied request on a built table
// leaves it.
func benchExchange(b *testing.B) *core.Exchange {
	builder := route.NewBuilder(health.NewRegistry(), nil)
	b.Cleanup(builder.Close)
	tab := builder.Build([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil,
		map[string]*discovery.InstanceSet{"user": setOf(b, "user", "127.0.0.1:9")})
	route := tab.Match("", "/api/user/1")
	x := core.NewExchange()
	x.Reset(&fastDown{x: x}, time.Time{}, "GET", route, route.Service(), "/api/user/1")
	x.Attempts, x.Status = 1, 200
	return x
}

// BenchmarkRecord measures what a request pays for metrics: it must not
// allocate nor lock.
func BenchmarkRecord(b *testing.B) {
	x := benchExchange(b)
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		x.Record(start)
	}
}

// BenchmarkRecordParallel is BenchmarkRecord from every core at once on one
// route: the cost of the shared counters' cache lines.
func BenchmarkRecordParallel(b *testing.B) {
	x := benchExchange(b)
	start := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		x := &core.Exchange{Route: x.Route, Service: x.Service, Attempts: 1, Status: 200}
		for pb.Next() {
			x.Record(start)
		}
	})
}

func TestRecordDoesNotAllocate(t *testing.T) {
	res := testing.Benchmark(BenchmarkRecord)
	if a := res.AllocsPerOp(); a != 0 {
		t.Errorf("record: %d allocations per request, want 0", a)
	}
}

// BenchmarkAttemptDone measures what an upstream attempt pays at its end:
// the outlier report, the instance's answer counts and the attempt-duration
// histograms of the service and the instance. Attempts alternate between a
// 200, a 404, a 503 and a timed-out attempt with no answer, so every branch
// runs; with 5 consecutive failures to eject, none ejects (an ejection
// logs, which may allocate, and happens once per ejection, not per
// request).
// outlierTable is a built table with one route to one service of one
// instance, whose passive checks eject after 5 failures.
func outlierTable(b *testing.B) (*route.Route, *route.Service, *route.Upstream) {
	builder := route.NewBuilder(health.NewRegistry(), nil)
	b.Cleanup(builder.Close)
	tab := builder.Build([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}},
		map[string]route.ServiceSpec{"user": {Outlier: health.Outlier{ConsecutiveFailures: 5, BaseEjectionTime: time.Minute}}},
		map[string]*discovery.InstanceSet{"user": setOf(b, "user", "127.0.0.1:9")})
	svc := tab.Service("user")
	return tab.Match("", "/api/user/1"), svc, svc.Upstreams()[0]
}

func BenchmarkAttemptDone(b *testing.B) {
	_, svc, up := outlierTable(b)
	if up.Stats() == nil || svc.Stats() == nil {
		b.Fatal("a table built by a Builder has no stats")
	}
	statuses := [4]int{200, 404, 503, 0}
	timeout := context.DeadlineExceeded
	start := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		st := statuses[i&3]
		var err error
		if st == 0 {
			err = timeout
		}
		svc.AttemptDone(up, st, err, start)
	}
	if got := up.Stats().Durations().Snapshot().Count(); got == 0 {
		b.Fatal("no attempt duration recorded")
	}
}

// TestAttemptDoneDoesNotAllocate: the end of every upstream attempt —
// histograms included — allocates nothing.
func TestAttemptDoneDoesNotAllocate(t *testing.T) {
	res := testing.Benchmark(BenchmarkAttemptDone)
	if a := res.AllocsPerOp(); a != 0 {
		t.Errorf("attempt done: %d allocations per attempt, want 0", a)
	}
}

// BenchmarkRequestEndParallel ends requests on every core at once, as a
// busy proxy does: one attempt and one request on the same route, service
// and instance. What it measures is mostly the cache lines the counters
// share between cores.
func BenchmarkRequestEndParallel(b *testing.B) {
	rt, svc, up := outlierTable(b)
	start := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			svc.AttemptDone(up, 200, nil, start)
			route.RecordRequest(rt, up, 200, 120, time.Millisecond, 1)
		}
	})
}

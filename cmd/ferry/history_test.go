package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// TestHistoryPoints drives real requests through a Handler and samples
// them: each step's point holds the step's rates and latencies, per route
// and per instance, and the ring keeps only the last historyPoints.
func TestHistoryPoints(t *testing.T) {
	f := newMetricsFixture(t)
	h := newHistory(f.handler.Table)
	t0 := time.Unix(1_800_000_000, 0)
	h.sample(t0) // the first sample only sets the baseline
	if routes, inst := h.snapshot(""); len(routes) != 1 || len(inst) != 1 || len(routes[0].History.T) != 0 {
		t.Fatalf("after one sample: got %d routes, %d instances, %d points; want 1, 1, 0", len(routes), len(inst), len(routes[0].History.T))
	}
	for range 8 {
		f.request(t, "/api/user/1")
	}
	f.request(t, "/api/user/fail") // 502 from the backend
	f.request(t, "/api/user/fail")
	f.request(t, "/api/user/missing") // 404 from the backend
	h.sample(t0.Add(historyStep))

	routes, inst := h.snapshot("")
	r := routes[0]
	if r.Name != "users" || r.Service != "user" {
		t.Fatalf("route series %q/%q, want users/user", r.Name, r.Service)
	}
	step := float32(historyStep.Seconds())
	if r.Rate != 11/step || r.Rate5xx != 2/step || r.Rate4xx != 1/step {
		t.Errorf("route rates: got %v/s, 5xx %v/s, 4xx %v/s; want %v, %v, %v", r.Rate, r.Rate5xx, r.Rate4xx, 11/step, 2/step, 1/step)
	}
	if r.BytesPerSec != 22/step || r.Requests != 11 || r.Bytes != 22 {
		t.Errorf("route bytes: got %v/s, totals %d requests %d bytes; want %v/s, 11, 22", r.BytesPerSec, r.Requests, r.Bytes, 22/step)
	}
	if r.P50ms <= 0 || r.P99ms < r.P50ms || r.P99ms > 60_000 {
		t.Errorf("route latencies: p50 %v ms, p99 %v ms", r.P50ms, r.P99ms)
	}
	if len(r.History.T) != 1 || r.History.T[0] != t0.Add(historyStep).Unix() {
		t.Errorf("history: got t=%v, want one point at the step's end", r.History.T)
	}
	i := inst[0]
	if i.Name != "user-1" || i.Node != "n1" || i.Rate != 11/step || i.Rate5xx != 2/step || i.Rate4xx != 1/step {
		t.Errorf("instance series %q on %q: rate %v, 5xx %v, 4xx %v; want user-1 on n1, %v, %v, %v",
			i.Name, i.Node, i.Rate, i.Rate5xx, i.Rate4xx, 11/step, 2/step, 1/step)
	}
	if i.P50ms <= 0 || i.P99ms < i.P50ms || i.BytesPerSec != 22/step {
		t.Errorf("instance latencies and bytes: p50 %v ms, p99 %v ms, %v B/s", i.P50ms, i.P99ms, i.BytesPerSec)
	}

	// A quiet step is a zero point; the ring keeps the last historyPoints.
	for k := 2; k <= historyPoints+10; k++ {
		h.sample(t0.Add(time.Duration(k) * historyStep))
	}
	routes, _ = h.snapshot("")
	r = routes[0]
	if n := len(r.History.T); n != historyPoints {
		t.Fatalf("got %d points, want %d", n, historyPoints)
	}
	if r.Rate != 0 || r.History.T[historyPoints-1] != t0.Add(time.Duration(historyPoints+10)*historyStep).Unix() ||
		r.History.T[0] != t0.Add(11*historyStep).Unix() {
		t.Errorf("ring order: first %d last %d, latest rate %v", r.History.T[0], r.History.T[historyPoints-1], r.Rate)
	}

	// A route that leaves the table loses its series at the next step.
	f.handler.Store(route.NewBuilder(health.NewRegistry(), nil).Build(nil, nil, nil))
	h.sample(t0.Add(1000 * historyStep))
	if routes, inst := h.snapshot(""); len(routes)+len(inst) != 0 {
		t.Errorf("after the route went away: %d route and %d instance series kept", len(routes), len(inst))
	}
}

// TestEventsFromStateChanges: ejections, check failures and membership
// changes become events with their time and reason, and log lines.
func TestEventsFromStateChanges(t *testing.T) {
	reg := health.NewRegistry()
	b := route.NewBuilder(reg, nil)
	defer b.Close()
	inst := func(id string, port int) discovery.Instance {
		return discovery.Instance{ID: id, Node: "n1", Address: "127.0.0.1", Port: port, Weight: 1}
	}
	set := &discovery.InstanceSet{Service: "user", Known: true, Instances: []discovery.Instance{inst("u1", 9001), inst("u2", 9002)}}
	sets := map[string]*discovery.InstanceSet{"user": set}
	tab := b.Build([]route.RouteSpec{{Name: "users", PathPrefix: "/u", Service: "user"}},
		map[string]route.ServiceSpec{"user": {Outlier: health.Outlier{ConsecutiveFailures: 3, BaseEjectionTime: time.Minute}}}, sets)

	var logs bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	l := newEventLog()
	now := time.Unix(1_800_000_000, 0)
	l.membership(log, sets, now)
	l.observe(tab)
	if got := l.recent(); len(got) != 0 {
		t.Fatalf("first sight: got events %+v, want none", got)
	}
	if !strings.Contains(logs.String(), "first instances from Consul: service=user instances=2") {
		t.Errorf("first answer not logged as one line:\n%s", logs.String())
	}

	reg.State("user", "n1/u1").Report(health.Refused, health.Outlier{ConsecutiveFailures: 3, BaseEjectionTime: time.Minute})
	l.observe(tab)
	sets["user"] = &discovery.InstanceSet{Service: "user", Known: true, Instances: []discovery.Instance{inst("u2", 9002), inst("u3", 9003)}}
	l.membership(log, sets, now.Add(time.Second))

	got := l.recent()
	want := []struct{ event, instance, reason string }{
		{"left", "u1", "deregistered"}, {"joined", "u3", "registered"}, {"ejected", "u1", "connection refused"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	// Newest first; joins and leaves of one update come in no set order.
	if got[0].Event == "joined" {
		got[0], got[1] = got[1], got[0]
	}
	for i, w := range want {
		if got[i].Event != w.event || got[i].Instance != w.instance || got[i].Reason != w.reason || got[i].Service != "user" {
			t.Errorf("event %d: got %+v, want %s %s %q", i, got[i], w.event, w.instance, w.reason)
		}
	}
	for _, line := range []string{
		"instance joined: service=user instance_id=u3 address=127.0.0.1:9003 reason=registered",
		"instance left: service=user instance_id=u1 address=127.0.0.1:9001 reason=deregistered",
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs.String())
		}
	}
	for i := range maxEvents + 5 {
		l.add(event{Event: "reloaded", Time: now.Add(time.Duration(i) * time.Second)})
	}
	if got := l.recent(); len(got) != maxEvents || !got[0].Time.Equal(now.Add((maxEvents+4)*time.Second)) {
		t.Errorf("bounded log: got %d events, newest %v", len(got), got[0].Time)
	}
}

// TestHistoryIdleSeriesKeepsNoRing: a route or instance without traffic
// costs no ring, and its first traffic is placed at the right step.
func TestHistoryIdleSeriesKeepsNoRing(t *testing.T) {
	f := newMetricsFixture(t)
	h := newHistory(f.handler.Table)
	t0 := time.Unix(1_800_000_000, 0)
	for k := range 3 {
		h.sample(t0.Add(time.Duration(k) * historyStep))
	}
	for k, s := range h.series {
		if s.ring != nil || s.n != 2 {
			t.Errorf("idle series %v: ring allocated %v, %d points; want none, 2", k, s.ring != nil, s.n)
		}
	}
	f.request(t, "/api/user/1")
	h.sample(t0.Add(3 * historyStep))
	routes, _ := h.snapshot("user")
	r := routes[0]
	if len(r.History.Rate) != 3 || r.History.Rate[0] != 0 || r.History.Rate[2] == 0 || r.History.T[2] != t0.Add(3*historyStep).Unix() || r.History.T[0] != t0.Add(historyStep).Unix() {
		t.Errorf("after the first traffic: rates %v at %v", r.History.Rate, r.History.T)
	}
	if routes, inst := h.snapshot("other"); len(routes)+len(inst) != 0 {
		t.Errorf("snapshot of another service: got %d series", len(routes)+len(inst))
	}
}

// TestMembershipConsulStatus: an instance that stays registered but leaves
// routing (its Consul check critical) leaves with Consul's status as the
// reason and a time the admin API shows; it joins again when its check
// passes. One registered with a failing check is out of routing from its
// registration on, without an event (it never took traffic).
func TestMembershipConsulStatus(t *testing.T) {
	inst := func(id, status string) discovery.Instance {
		return discovery.Instance{ID: id, Node: "n1", Address: "127.0.0.1", Port: 9000, Weight: 1, Status: status, Datacenter: "dc1"}
	}
	setOf := func(all ...discovery.Instance) map[string]*discovery.InstanceSet {
		s := &discovery.InstanceSet{Service: "user", Known: true, Datacenter: "dc1", All: all}
		for _, in := range all {
			if in.Status == discovery.StatusPassing {
				s.Instances = append(s.Instances, in)
			}
		}
		return map[string]*discovery.InstanceSet{"user": s}
	}
	var logs bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	l := newEventLog()
	t0 := time.Unix(1_800_000_000, 0)

	// Already critical at the first answer: out of routing since an unknown time.
	l.membership(log, setOf(inst("u1", "passing"), inst("u2", "critical")), t0)
	if got := l.notRoutedSince("user", inst("u2", "critical")); !got.IsZero() {
		t.Errorf("critical at the first answer: not routed since %v, want unknown (zero)", got)
	}
	if !strings.Contains(logs.String(), "first instances from Consul: service=user instances=1 registered=2") {
		t.Errorf("first answer line:\n%s", logs.String())
	}

	t1 := t0.Add(time.Minute)
	l.membership(log, setOf(inst("u1", "critical"), inst("u2", "critical"), inst("u3", "maintenance")), t1)
	if got := l.notRoutedSince("user", inst("u1", "critical")); !got.Equal(t1) {
		t.Errorf("u1 left routing: not routed since %v, want %v", got, t1)
	}
	if got := l.notRoutedSince("user", inst("u3", "maintenance")); !got.Equal(t1) {
		t.Errorf("u3 registered in maintenance: not routed since %v, want %v", got, t1)
	}
	t2 := t1.Add(time.Minute)
	l.membership(log, setOf(inst("u1", "critical"), inst("u2", "passing"), inst("u3", "maintenance")), t2)
	if got := l.notRoutedSince("user", inst("u1", "critical")); !got.Equal(t1) {
		t.Errorf("u1 still out: not routed since %v, want %v (kept)", got, t1)
	}
	if got := l.notRoutedSince("user", inst("u2", "passing")); !got.IsZero() {
		t.Errorf("u2 routable: not routed since %v, want zero", got)
	}

	got := l.recent()
	want := []event{
		{Time: t2, Service: "user", Instance: "u2", Event: "joined", Reason: "Consul: passing"},
		{Time: t1, Service: "user", Instance: "u1", Event: "left", Reason: "Consul: critical"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("events:\n got %+v\nwant %+v", got, want)
	}
	for _, line := range []string{
		`instance left: service=user instance_id=u1 address=127.0.0.1:9000 reason="Consul: critical"`,
		`instance joined: service=user instance_id=u2 address=127.0.0.1:9000 reason="Consul: passing"`,
	} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %s:\n%s", line, logs.String())
		}
	}
}

// TestMembershipFailover: instances of a failover datacenter join with
// that reason, and leave with "failover ended" when the local datacenter
// has routable instances again.
func TestMembershipFailover(t *testing.T) {
	inst := func(id, status, dc string) discovery.Instance {
		return discovery.Instance{ID: id, Node: "n-" + dc, Address: "127.0.0.1", Port: 9000, Weight: 1, Status: status, Datacenter: dc}
	}
	local := func(status string) *discovery.InstanceSet {
		s := &discovery.InstanceSet{Service: "user", Known: true, Datacenter: "dc1", All: []discovery.Instance{inst("u1", status, "dc1")}}
		if status == discovery.StatusPassing {
			s.Instances = s.All
		}
		return s
	}
	var logs bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	l := newEventLog()
	t0 := time.Unix(1_800_000_000, 0)
	l.membership(log, map[string]*discovery.InstanceSet{"user": local("passing")}, t0)

	over := local("critical")
	remote := inst("u9", "passing", "dc2")
	over.Datacenter, over.FailedOver, over.Instances = "dc2", true, []discovery.Instance{remote}
	over.All = append(over.All, remote)
	l.membership(log, map[string]*discovery.InstanceSet{"user": over}, t0.Add(time.Second))
	l.membership(log, map[string]*discovery.InstanceSet{"user": local("passing")}, t0.Add(2*time.Second))

	var got []string
	for _, e := range l.recent() {
		got = append(got, e.Event+" "+e.Instance+": "+e.Reason)
	}
	want := []string{ // newest first
		"left u9: failover ended", "joined u1: Consul: passing",
		"joined u9: failed over to datacenter dc2", "left u1: Consul: critical",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

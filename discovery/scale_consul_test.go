package discovery

// Scaled mode against a real Consul dev agent with its default limits
// (limits.http_max_conns_per_client = 200): the case where one blocking
// query per service got 429s and never became ready.

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// countingClient returns a client for addr whose transport counts the
// connections open at once (the agent's limit counts exactly these) and
// is capped at conns, as cmd/ferry caps it; and its configuration, as
// api.NewClient completed it.
func countingClient(t *testing.T, addr string, conns int) (*api.Client, *api.Config, *atomic.Int64) {
	t.Helper()
	var open, peak atomic.Int64
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.Transport.MaxConnsPerHost = conns
	cfg.Transport.MaxIdleConnsPerHost = conns
	var d net.Dialer
	cfg.Transport.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		n := open.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		return &countedConn{Conn: c, open: &open}, nil
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	return c, cfg, &peak
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// catalogRegister registers an instance through the catalog (as an external
// service would be), with a check when status is not "".
func catalogRegister(t *testing.T, c *api.Client, node, svc, id string, port int, status string) {
	t.Helper()
	reg := &api.CatalogRegistration{Node: node, Address: "127.0.0.1", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: id, Service: svc, Address: "127.0.0.1", Port: port}}
	if status != "" {
		reg.Check = &api.AgentCheck{Node: node, CheckID: "check:" + id, Name: "check", Status: status, ServiceID: id}
	}
	if _, err := c.Catalog().Register(reg, nil); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func TestConsulScaledDefaultLimits(t *testing.T) {
	a, admin := startConsul(t)
	const services, budget = 300, 64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range services {
		for j := range 2 {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				svc := "svc-" + strconv.Itoa(i)
				status := api.HealthPassing
				if i%2 == 1 {
					status = "" // half of the services have no checks at all
				}
				catalogRegister(t, admin, "node-"+strconv.Itoa(j), svc, svc+"-"+strconv.Itoa(j), 10000+j, status)
			}()
		}
	}
	wg.Wait()

	c, cfg, peak := countingClient(t, a.HTTPAddr, budget-1)
	var errs atomic.Int64
	// As cmd/ferry builds it: the check list read uncompressed, through
	// the same capped transport.
	m := New(Options{Health: c.Health(), Cluster: ConsulCluster{Client: c, Config: cfg}, MaxWatchConnections: budget,
		AllowStale: true, Logger: testLogger(t), OnError: func(string, error) { errs.Add(1) }})
	var ws []Watch
	for i := range services {
		ws = append(ws, Watch{Service: "svc-" + strconv.Itoa(i)})
	}
	m.Watch(ws)
	if !m.Scaled() {
		t.Fatal("300 services under a budget of 64: want scaled mode")
	}
	start := time.Now()
	stop := run(t, m)
	defer stop()
	deadline := time.Now().Add(20 * time.Second)
	for !m.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 20s")
		}
		select {
		case <-m.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("%d services ready in %v with at most %d connections to the agent", services, time.Since(start).Round(time.Millisecond), peak.Load())
	for name, s := range m.Sets() {
		if len(s.Instances) != 2 || s.Stale {
			t.Errorf("%s: %+v", name, s)
		}
	}
	if errs.Load() != 0 {
		t.Errorf("%d query errors, want none", errs.Load())
	}

	measure := func(what, svc string, change func(), cond func(*InstanceSet) bool) {
		t.Helper()
		time.Sleep(100 * time.Millisecond) // let the detector park in its blocking queries
		start := time.Now()
		change()
		seen := waitFor(t, m, svc, 10*time.Second, what, cond)
		t.Logf("%s: published %v after the change started", what, seen.Sub(start).Round(time.Microsecond))
	}
	ports := func(s *InstanceSet) []int {
		var out []int
		for _, in := range s.Instances {
			out = append(out, in.Port)
		}
		return out
	}
	measure("check of svc-10-0 turns critical", "svc-10", func() {
		catalogRegister(t, admin, "node-0", "svc-10", "svc-10-0", 10000, api.HealthCritical)
	}, func(s *InstanceSet) bool {
		return len(s.Instances) == 1 && len(s.All) == 2 && s.All[0].Status == StatusCritical
	})
	measure("instance with a check deregistered", "svc-20", func() {
		if _, err := admin.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-1", ServiceID: "svc-20-1"}, nil); err != nil {
			t.Fatal(err)
		}
	}, func(s *InstanceSet) bool { return len(s.Instances) == 1 && len(s.All) == 1 })
	measure("instance without checks moved in place (sweep)", "svc-31", func() {
		catalogRegister(t, admin, "node-0", "svc-31", "svc-31-0", 12345, "")
	}, func(s *InstanceSet) bool { p := ports(s); return len(p) == 2 && p[0] == 12345 })
	measure("instance without checks added (sweep)", "svc-33", func() {
		catalogRegister(t, admin, "node-2", "svc-33", "svc-33-2", 10002, "")
	}, func(s *InstanceSet) bool { return len(s.Instances) == 3 })
	measure("service without checks gone from the catalog (catalog diff)", "svc-35", func() {
		for j := range 2 {
			if _, err := admin.Catalog().Deregister(&api.CatalogDeregistration{Node: "node-" + strconv.Itoa(j), ServiceID: "svc-35-" + strconv.Itoa(j)}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}, func(s *InstanceSet) bool { return len(s.All) == 0 && !s.Stale })
	if p := peak.Load(); p > budget-1 {
		t.Errorf("peak connections %d, want at most %d", p, budget-1)
	}

	// Fewer services: back to one blocking query each, sets kept.
	m.Watch(ws[5:15])
	if m.Scaled() {
		t.Fatal("10 services: want per-service mode")
	}
	if s := m.Sets()["svc-10"]; s == nil || len(s.Instances) != 1 || !s.Known {
		t.Fatalf("svc-10 after the switch: %+v", s)
	}
	measure("per-service mode again: svc-10-0 passes", "svc-10", func() {
		catalogRegister(t, admin, "node-0", "svc-10", "svc-10-0", 10000, api.HealthPassing)
	}, func(s *InstanceSet) bool { return len(s.Instances) == 2 })
	if errs.Load() != 0 {
		t.Errorf("%d query errors, want none", errs.Load())
	}
}

// TestConsulScaledFailover: failover works in scaled mode too — a service
// with no routable local instance is served from the failover datacenter,
// re-read while failed over, and comes back when the local one recovers.
func TestConsulScaledFailover(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered, so it runs after the agents stop
	dc1 := consultest.StartWith(t, consultest.Options{Datacenter: "dc1", Node: "node-dc1"})
	dc2 := consultest.StartWith(t, consultest.Options{Datacenter: "dc2", Node: "node-dc2"})
	c1, c2 := dc1.Client(), dc2.Client()
	if err := c1.Agent().Join(dc2.SerfWANAddr(), true); err != nil {
		t.Fatalf("join over the WAN: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, _, err := c1.Health().Service("consul", "", false, &api.QueryOptions{Datacenter: "dc2"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dc2 not reachable through dc1")
		}
		time.Sleep(100 * time.Millisecond)
	}
	catalogRegister(t, c1, "node-a", "web", "web-dc1", 10001, api.HealthPassing)
	catalogRegister(t, c2, "node-b", "web", "web-dc2", 10002, api.HealthPassing)
	for _, other := range []string{"x", "y", "z"} {
		catalogRegister(t, c1, "node-a", other, other+"-1", 10003, api.HealthPassing)
	}
	c, _, _ := countingClient(t, dc1.HTTPAddr, 3)
	// Without Config: the check list read through the api client.
	m := New(Options{Health: c.Health(), Cluster: ConsulCluster{Client: c}, MaxWatchConnections: 4, Logger: testLogger(t)})
	m.Watch([]Watch{{Service: "web", Failover: []string{"dc2"}}, {Service: "x"}, {Service: "y"}, {Service: "z"}})
	if !m.Scaled() {
		t.Fatal("4 services under a budget of 4: want scaled mode")
	}
	stop := run(t, m)
	defer stop()
	port := func(s *InstanceSet) int {
		if len(s.Instances) != 1 {
			return 0
		}
		return s.Instances[0].Port
	}
	waitFor(t, m, "web", 10*time.Second, "local instance", func(s *InstanceSet) bool { return port(s) == 10001 && !s.FailedOver })
	catalogRegister(t, c1, "node-a", "web", "web-dc1", 10001, api.HealthCritical)
	waitFor(t, m, "web", 10*time.Second, "failover to dc2", func(s *InstanceSet) bool {
		return port(s) == 10002 && s.FailedOver && s.Datacenter == "dc2" && s.Instances[0].Datacenter == "dc2"
	})
	// A change in dc2 while failed over is picked up by the re-read.
	catalogRegister(t, c2, "node-b", "web", "web-dc2", 10004, api.HealthPassing)
	waitFor(t, m, "web", 15*time.Second, "dc2's change while failed over", func(s *InstanceSet) bool { return port(s) == 10004 })
	catalogRegister(t, c1, "node-a", "web", "web-dc1", 10001, api.HealthPassing)
	waitFor(t, m, "web", 10*time.Second, "back to dc1", func(s *InstanceSet) bool { return port(s) == 10001 && !s.FailedOver })
}

// TestConsulClusterChecksRaw: the check list read with ferry's own request
// (Config set: uncompressed, scanned) is what the api client reads, with a
// filter, a datacenter, stale reads and a blocking index; an error status
// is an error.
func TestConsulClusterChecksRaw(t *testing.T) {
	a, admin := startConsul(t)
	for i := range 20 {
		status := api.HealthPassing
		if i%4 == 0 {
			status = api.HealthCritical
		}
		catalogRegister(t, admin, "node-"+strconv.Itoa(i%3), "svc-"+strconv.Itoa(i/2), "svc-"+strconv.Itoa(i), 10000+i, status)
	}
	c, cfg, _ := countingClient(t, a.HTTPAddr, 4)
	raw, plain := ConsulCluster{Client: c, Config: cfg}, ConsulCluster{Client: c}
	sorted := func(cs []CheckState) []CheckState {
		return slices.SortedFunc(slices.Values(cs), func(a, b CheckState) int { return strings.Compare(a.Node+a.CheckID, b.Node+b.CheckID) })
	}
	for _, q := range []*api.QueryOptions{
		{},
		{AllowStale: true, Datacenter: "dc1"},
		{Filter: notPassing},
	} {
		want, wmeta, err := plain.Checks(q)
		if err != nil {
			t.Fatal(err)
		}
		got, gmeta, err := raw.Checks(q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sorted(got), sorted(want)) || len(got) == 0 {
			t.Errorf("%+v:\n got %v\nwant %v", q, got, want)
		}
		if gmeta.LastIndex != wmeta.LastIndex || gmeta.LastIndex == 0 || !gmeta.KnownLeader {
			t.Errorf("%+v: meta %+v, want index %d and a known leader", q, gmeta, wmeta.LastIndex)
		}
	}
	// A blocking query on the current index waits for the next change.
	_, meta, err := raw.Checks(&api.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		catalogRegister(t, admin, "node-0", "svc-new", "svc-new", 10100, api.HealthPassing)
	}()
	start := time.Now()
	got, next, err := raw.Checks(&api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if next.LastIndex <= meta.LastIndex || time.Since(start) < 100*time.Millisecond ||
		!slices.ContainsFunc(got, func(c CheckState) bool { return c.ServiceName == "svc-new" }) {
		t.Errorf("blocking query: index %d after %d, %v, %d checks", next.LastIndex, meta.LastIndex, time.Since(start), len(got))
	}
	if _, _, err := raw.Checks(&api.QueryOptions{Filter: "Nonsense =="}); err == nil || !strings.Contains(err.Error(), "Unexpected response code: 500") {
		t.Errorf("a bad filter: %v, want the agent's 500 as an error", err)
	}
}

package e2e

// SPEC §14 end to end, against real Consul agents: many services under the
// agent's default limits, the warning policy and every instance's Consul
// status, panic mode, the snapshot file, and datacenter failover.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// nativeView is what these tests read of GET /v1/upstreams.
type nativeView struct {
	Services []struct {
		Name         string `json:"name"`
		Known        bool   `json:"known"`
		Stale        bool   `json:"stale"`
		FromSnapshot bool   `json:"from_snapshot"`
		Datacenter   string `json:"datacenter"`
		FailedOver   bool   `json:"failed_over"`
		Panic        bool   `json:"panic"`
		Instances    []struct {
			ID           string `json:"id"`
			ConsulStatus string `json:"consul_status"`
			Routable     bool   `json:"routable"`
			Datacenter   string `json:"datacenter"`
		} `json:"instances"`
	} `json:"services"`
}

func nativeUpstreams(t *testing.T, f *ferry) nativeView {
	t.Helper()
	status, body := get(t, f.AdminURL+"/v1/upstreams")
	if status != 200 {
		t.Fatalf("GET /v1/upstreams: %d %s", status, body)
	}
	var v nativeView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("GET /v1/upstreams: %v\n%s", err, body)
	}
	return v
}

// statuses lists a service's instances as "id:consul_status:routable".
func statuses(v nativeView, service string) []string {
	var out []string
	for _, s := range v.Services {
		if s.Name == service {
			for _, i := range s.Instances {
				out = append(out, fmt.Sprintf("%s:%s:%v", i.ID, i.ConsulStatus, i.Routable))
			}
		}
	}
	return out
}

// TestManyServicesUnderDefaultAgentLimits is the 429 case: 300 routed
// services against an agent with limits.http_max_conns_per_client at its
// default (200). One blocking query per service got 165 of them 429s and
// ferry never became ready; with the connection budget ferry switches to
// its change detector and becomes ready.
func TestManyServicesUnderDefaultAgentLimits(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	const n = 300
	b := startBackend(t, "many", nil)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var conf strings.Builder
	conf.WriteString("listen = \"%LISTEN%\"\nadmin = \"%ADMIN%\"\nconsul {\n  address = \"%CONSUL%\"\n}\n")
	for i := range n {
		svc := "svc-" + strconv.Itoa(i)
		fmt.Fprintf(&conf, "route %q {\n  path_prefix = \"/%s\"\n  service = %q\n}\n", svc, svc, svc)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := c.Catalog().Register(&api.CatalogRegistration{Node: "many-node", Address: "127.0.0.1", SkipNodeUpdate: true,
				Service: &api.AgentService{ID: svc, Service: svc, Address: "127.0.0.1", Port: b.Port}}, nil)
			if err != nil {
				t.Errorf("register %s: %v", svc, err)
			}
		}()
	}
	wg.Wait()
	start := time.Now()
	f := startFerry(t, agent.HTTPAddr, conf.String())
	waitFor(t, 30*time.Second, "ferry /readyz with 300 services", func() bool { return statusOf(f.AdminURL+"/readyz") == 200 })
	t.Logf("300 services ready %v after ferry started", time.Since(start).Round(time.Millisecond))
	for _, i := range []int{0, 150, n - 1} {
		if code, body := get(t, f.URL+"/svc-"+strconv.Itoa(i)+"/x"); code != 200 || body != "many" {
			t.Errorf("svc-%d: %d %q", i, code, body)
		}
	}
	// A change still reaches routing.
	if _, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: "many-node", ServiceID: "svc-7"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "svc-7 deregistered reaches routing", func() bool { return statusOf(f.URL+"/svc-7/x") == 503 })
	// Match the agent's refusal itself ("Unexpected response code: 429 (Your
	// IP is issuing too many concurrent connections…)"), not the digits: a
	// timestamp or a port in the log may contain "429".
	if logs := f.Logs(); strings.Contains(logs, "code: 429") || strings.Contains(logs, "too many concurrent connections") ||
		!strings.Contains(logs, "switching to the change detector") {
		t.Errorf("want the change detector and no 429 in the log:\n%s", logs)
	}
}

// TestWarningPolicyAndConsulStatuses registers instances in every Consul
// state: health = "warning" routes passing and warning ones, the default
// only passing ones, and /v1/upstreams shows each with its true status.
func TestWarningPolicyAndConsulStatuses(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	for _, svc := range []string{"user", "order"} {
		for _, st := range []string{"passing", "warning", "critical", "maint"} {
			b := startBackend(t, svc+"-"+st, nil)
			register(t, c, svc, b)
			switch st {
			case "warning", "critical":
				if err := c.Agent().UpdateTTL("service:"+b.Name, "", st); err != nil {
					t.Fatal(err)
				}
			case "maint":
				if err := c.Agent().EnableServiceMaintenance(b.Name, "e2e"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	f := startFerry(t, agent.HTTPAddr, `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
service "user" {
  health = "warning"
}
route "users" {
  path_prefix = "/user"
  service     = "user"
}
route "orders" {
  path_prefix = "/order"
  service     = "order"
}
`)
	f.WaitReady()
	waitForInstances(t, f, "/user/", 2)
	if s := seen(t, f.URL+"/user/", 8); s["200 user-passing"] == 0 || s["200 user-warning"] == 0 || len(s) != 2 {
		t.Errorf("health = warning: got %v, want the passing and the warning instance", s)
	}
	if s := seen(t, f.URL+"/order/", 6); s["200 order-passing"] != 6 {
		t.Errorf("health = passing: got %v, want only the passing instance", s)
	}
	v := nativeUpstreams(t, f)
	want := map[string][]string{
		"user":  {"user-critical:critical:false", "user-maint:maintenance:false", "user-passing:passing:true", "user-warning:warning:true"},
		"order": {"order-critical:critical:false", "order-maint:maintenance:false", "order-passing:passing:true", "order-warning:warning:false"},
	}
	for svc, w := range want {
		if got := statuses(v, svc); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s in /v1/upstreams: got %v, want %v", svc, got, w)
		}
	}
	// The metrics count them the same way: all four registered, the
	// policy's routable ones routed.
	for _, m := range []struct {
		name, service string
		want          float64
	}{
		{"ferry_upstream_registered_instances", "user", 4}, {"ferry_upstream_instances", "user", 2},
		{"ferry_upstream_registered_instances", "order", 4}, {"ferry_upstream_instances", "order", 1},
	} {
		if got := metricNow(t, f, m.name, "service="+m.service); got != m.want {
			t.Errorf("%s{service=%q}: got %v, want %v", m.name, m.service, got, m.want)
		}
	}
	// The warning instance turns critical: out of the warning policy too.
	if err := c.Agent().UpdateTTL("service:user-warning", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitForInstances(t, f, "/user/", 1)
}

// TestPanicThreshold: with panic_threshold = 60 and one of two instances
// failing ferry's own check (50% healthy), the service panics and both get
// traffic; when the check passes again, panic ends.
func TestPanicThreshold(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	var sick, fine atomic.Bool
	b1, b2 := healthBackend(t, "user-1", &sick), healthBackend(t, "user-2", &fine)
	register(t, c, "user", b1)
	register(t, c, "user", b2)
	f := startFerry(t, agent.HTTPAddr, strings.Replace(healthConfig, `retries          = 2`, "retries          = 2\n  panic_threshold  = 60", 1))
	f.WaitReady()
	waitForInstances(t, f, "/api/user/", 2)

	panicked := func() bool {
		for _, s := range nativeUpstreams(t, f).Services {
			if s.Name == "user" {
				return s.Panic
			}
		}
		return false
	}
	sick.Store(true)
	waitFor(t, 5*time.Second, "panic mode", panicked)
	// In panic both instances get traffic, the failing one included.
	if s := seen(t, f.URL+"/api/user/", 8); s["200 user-1"] == 0 || s["200 user-2"] == 0 {
		t.Errorf("in panic: got %v, want both instances", s)
	}
	if _, body := get(t, f.AdminURL+"/metrics"); !strings.Contains(body, `ferry_upstream_panic{service="user"} 1`) {
		t.Errorf("metrics: want ferry_upstream_panic 1 for user")
	}
	if !strings.Contains(f.Logs(), "panic mode: too few instances pass") {
		t.Errorf("want a log line about panic mode")
	}
	sick.Store(false)
	waitFor(t, 5*time.Second, "panic over", func() bool { return !panicked() })
}

const snapshotConfig = `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address        = "%CONSUL%"
  snapshot_file  = "%SNAPSHOT%"
  snapshot_ready = %READY%
}
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
`

// TestSnapshotColdStart: a ferry restarted while Consul is down serves the
// instances of its snapshot at once, stale, and /readyz follows
// snapshot_ready; a corrupt snapshot is ignored with a log line.
func TestSnapshotColdStart(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	b1, b2 := startBackend(t, "user-1", nil), startBackend(t, "user-2", nil)
	register(t, c, "user", b1)
	register(t, c, "user", b2)
	snap := filepath.Join(t.TempDir(), "instances.json")
	conf := func(ready bool) string {
		return strings.NewReplacer("%SNAPSHOT%", snap, "%READY%", strconv.FormatBool(ready)).Replace(snapshotConfig)
	}
	f := startFerry(t, agent.HTTPAddr, conf(true))
	f.WaitReady()
	waitForInstances(t, f, "/api/user/", 2)
	waitFor(t, 5*time.Second, "snapshot written", func() bool {
		data, err := os.ReadFile(snap)
		return err == nil && strings.Contains(string(data), "user-1") && strings.Contains(string(data), "user-2")
	})
	f.Signal(os.Interrupt)
	f.Wait(10 * time.Second)
	agent.Stop()

	// Consul down: served from the snapshot at once, ready but stale.
	f = startFerry(t, agent.HTTPAddr, conf(true))
	waitForInstances(t, f, "/api/user/", 2)
	code, body := get(t, f.AdminURL+"/readyz")
	if code != 200 || !strings.Contains(body, "snapshot") {
		t.Errorf("readyz with snapshot_ready = true: %d %q", code, body)
	}
	v := nativeUpstreams(t, f)
	if len(v.Services) != 1 || !v.Services[0].FromSnapshot || !v.Services[0].Stale {
		t.Errorf("upstreams from the snapshot: %+v", v.Services)
	}
	f.Signal(os.Interrupt)
	f.Wait(10 * time.Second)

	// snapshot_ready = false: routes still served, but not ready.
	f = startFerry(t, agent.HTTPAddr, conf(false))
	waitForInstances(t, f, "/api/user/", 2)
	if code, body := get(t, f.AdminURL+"/readyz"); code != 503 || !strings.Contains(body, "snapshot") {
		t.Errorf("readyz with snapshot_ready = false: %d %q", code, body)
	}
	f.Signal(os.Interrupt)
	f.Wait(10 * time.Second)

	// Consul back: the snapshot gives way to Consul's answer.
	agent.Restart()
	register(t, c, "user", b1)
	f = startFerry(t, agent.HTTPAddr, conf(false))
	f.WaitReady()
	waitForInstances(t, f, "/api/user/", 1)
	f.Signal(os.Interrupt)
	f.Wait(10 * time.Second)

	// A corrupt snapshot is ignored, with a clear line; no crash.
	agent.Stop()
	if err := os.WriteFile(snap, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	f = startFerry(t, agent.HTTPAddr, conf(true))
	waitFor(t, 5*time.Second, "log line about the snapshot", func() bool {
		return strings.Contains(f.Logs(), "ignoring the snapshot file")
	})
	if code := statusOf(f.AdminURL + "/readyz"); code != 503 {
		t.Errorf("readyz without a usable snapshot and Consul down: %d, want 503", code)
	}
	if code, _ := get(t, f.URL+"/api/user/"); code != 503 {
		t.Errorf("route without instances: %d, want 503", code)
	}
}

// TestFailoverToAnotherDatacenter runs two Consul dev servers in dc1 and
// dc2 joined over the WAN on loopback. When dc1 has no passing instance of
// the service, ferry routes to dc2's; back to dc1 as soon as it recovers.
func TestFailoverToAnotherDatacenter(t *testing.T) {
	dc1 := consultest.StartWith(t, consultest.Options{Datacenter: "dc1", Node: "node-dc1"})
	dc2 := consultest.StartWith(t, consultest.Options{Datacenter: "dc2", Node: "node-dc2"})
	c1, c2 := dc1.Client(), dc2.Client()
	if err := c1.Agent().Join(dc2.SerfWANAddr(), true); err != nil {
		t.Fatalf("join over the WAN: %v", err)
	}
	waitFor(t, 20*time.Second, "both datacenters known to dc1", func() bool {
		dcs, err := c1.Catalog().Datacenters()
		if err != nil || len(dcs) != 2 {
			return false
		}
		_, _, err = c1.Health().Service("consul", "", false, &api.QueryOptions{Datacenter: "dc2"})
		return err == nil
	})
	local, remote := startBackend(t, "user-dc1", nil), startBackend(t, "user-dc2", nil)
	register(t, c1, "user", local)
	register(t, c2, "user", remote)
	f := startFerry(t, dc1.HTTPAddr, `
listen = "%LISTEN%"
admin  = "%ADMIN%"
log {
  format = "json"
}
consul {
  address = "%CONSUL%"
}
service "user" {
  failover {
    datacenters = ["dc2"]
  }
}
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
`)
	f.WaitReady()
	if s := seen(t, f.URL+"/api/user/", 4); s["200 user-dc1"] != 4 {
		t.Fatalf("local datacenter first: got %v", s)
	}

	start := time.Now()
	if err := c1.Agent().UpdateTTL("service:user-dc1", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "failover to dc2", func() bool {
		code, body := get(t, f.URL+"/api/user/")
		return code == 200 && body == "user-dc2"
	})
	t.Logf("failed over to dc2 %v after dc1's only instance turned critical", time.Since(start).Round(time.Millisecond))
	v := nativeUpstreams(t, f)
	if s := v.Services[0]; !s.FailedOver || s.Datacenter != "dc2" {
		t.Errorf("upstreams while failed over: %+v", s)
	}
	if got := statuses(v, "user"); strings.Join(got, " ") != "user-dc1:critical:false user-dc2:passing:true" {
		t.Errorf("instances while failed over: %v", got)
	}
	if _, body := get(t, f.AdminURL+"/metrics"); !strings.Contains(body, `ferry_discovery_failover{datacenter="dc2",service="user"} 1`) {
		t.Errorf("metrics: want ferry_discovery_failover 1 for dc2")
	}
	waitFor(t, 5*time.Second, "the access log names dc2", func() bool {
		// A request answered before the access log learnt the failover
		// (it follows the routing table by a moment) has no datacenter:
		// send another while waiting.
		get(t, f.URL+"/api/user/")
		for _, line := range strings.Split(f.AccessLog(), "\n") {
			if strings.Contains(line, `"upstream":"`+remote.Addr+`","attempts":1,`) && strings.HasSuffix(line, `,"datacenter":"dc2"}`) {
				return true
			}
		}
		return false
	})

	start = time.Now()
	if err := c1.Agent().UpdateTTL("service:user-dc1", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "back to dc1", func() bool {
		code, body := get(t, f.URL+"/api/user/")
		return code == 200 && body == "user-dc1"
	})
	t.Logf("back to dc1 %v after its instance passed again", time.Since(start).Round(time.Millisecond))
	if s := nativeUpstreams(t, f).Services[0]; s.FailedOver || s.Datacenter != "dc1" {
		t.Errorf("upstreams back home: %+v", s)
	}
}

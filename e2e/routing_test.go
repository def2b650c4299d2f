package e2e

import (
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

func TestRoundRobinAcrossThreeInstances(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	for _, name := range []string{"user-1", "user-2", "user-3"} {
		register(t, c, "user", startBackend(t, name, nil))
	}
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/1", 3)

	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		code, body := get(t, f.URL+"/api/user/1")
		if code != 200 {
			t.Fatalf("request %d: got %d %q, want 200", i, code, body)
		}
		counts[body]++
	}
	for _, name := range []string{"user-1", "user-2", "user-3"} {
		if counts[name] != 10 {
			t.Errorf("%s got %d of 30 requests, want 10 (round robin); all: %v", name, counts[name], counts)
		}
	}
}

func TestInstanceChangesReachRouting(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	b1, b2, b3 := startBackend(t, "user-1", nil), startBackend(t, "user-2", nil), startBackend(t, "user-3", nil)
	register(t, c, "user", b1)
	register(t, c, "user", b2)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/", 2)

	// A new instance joins routing.
	register(t, c, "user", b3)
	waitForInstances(t, f, "/api/user/", 3)

	const cycles = 20
	var deregs, criticals []time.Duration
	for i := 0; i < cycles; i++ {
		start := time.Now()
		if err := c.Agent().ServiceDeregister(b3.Name); err != nil {
			t.Fatal(err)
		}
		deregs = append(deregs, timeUntilGone(t, f, b3.Name, start))
		register(t, c, "user", b3)
		waitForInstances(t, f, "/api/user/", 3)

		start = time.Now()
		if err := c.Agent().UpdateTTL("service:"+b3.Name, "failing on purpose", api.HealthCritical); err != nil {
			t.Fatal(err)
		}
		criticals = append(criticals, timeUntilGone(t, f, b3.Name, start))
		if err := c.Agent().UpdateTTL("service:"+b3.Name, "", api.HealthPassing); err != nil {
			t.Fatal(err)
		}
		waitForInstances(t, f, "/api/user/", 3)
	}
	for _, m := range []struct {
		what string
		d    []time.Duration
	}{{"deregistration", deregs}, {"critical check", criticals}} {
		p50, max := percentile(m.d, 0.5), percentile(m.d, 1)
		t.Logf("%s to routing over %d changes: p50 %v, p99/max %v", m.what, len(m.d), p50, max)
		if max > 500*time.Millisecond {
			t.Errorf("%s took up to %v to reach routing, want well under 500ms (target p99 100ms)", m.what, max)
		}
	}
}

func TestZeroInstancesAnswers503(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	b := startBackend(t, "user-1", nil)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()

	resp, err := client.Get(f.URL + "/api/user/1")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"user"`) {
		t.Fatalf("got %d %q, want 503 naming service \"user\"", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}

	register(t, c, "user", b)
	waitForInstances(t, f, "/api/user/1", 1)
	if err := c.Agent().ServiceDeregister(b.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "503 after the last instance left", func() bool {
		return statusOf(f.URL+"/api/user/1") == http.StatusServiceUnavailable
	})

	if code, body := get(t, f.URL+"/nowhere"); code != http.StatusNotFound {
		t.Errorf("unrouted path: got %d %q, want 404", code, body)
	}
}

// waitForInstances waits until requests to path reach exactly n distinct backends.
func waitForInstances(t *testing.T, f *ferry, path string, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, "routing over the expected instances", func() bool {
		seen := map[string]bool{}
		for i := 0; i < 3*n+3; i++ {
			code, body := get(t, f.URL+path)
			if code != 200 {
				return false
			}
			seen[body] = true
		}
		return len(seen) == n
	})
}

// timeUntilGone returns how long after start the backend named name stopped
// answering: the start of the first run of 8 requests in a row that it did not
// answer (round robin over the others would have reached it within that run).
func timeUntilGone(t *testing.T, f *ferry, name string, start time.Time) time.Duration {
	t.Helper()
	deadline := start.Add(10 * time.Second)
	var runStart time.Time
	streak := 0
	for time.Now().Before(deadline) {
		at := time.Now()
		code, body := get(t, f.URL+"/api/user/")
		if code == 200 && body != name {
			if streak == 0 {
				runStart = at
			}
			if streak++; streak == 8 {
				return runStart.Sub(start)
			}
			continue
		}
		streak = 0
	}
	t.Fatalf("%s still answered 10s after it left Consul's passing set", name)
	return 0
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

package discovery

// Integration tests against a real Consul dev agent (internal/consultest).

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
)

// startConsul starts a dev agent and returns it with a client whose idle
// connections are closed when the test ends. Leak checking is registered
// first so that it runs last, after the agent is stopped.
func startConsul(t *testing.T) (*consultest.Agent, *api.Client) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	a := consultest.Start(t)
	cfg := api.DefaultConfig()
	cfg.Address = a.HTTPAddr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	return a, c
}

func register(t *testing.T, c *api.Client, service, id string, port, weight int) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: "127.0.0.1", Port: port, Tags: []string{"v1"},
		Weights: &api.AgentWeights{Passing: weight, Warning: 1},
		Check:   &api.AgentServiceCheck{TTL: "30s", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func registerWeb(t *testing.T, c *api.Client) {
	t.Helper()
	for i := 1; i <= 3; i++ {
		register(t, c, "web", fmt.Sprintf("web-%d", i), 9000+i, i)
	}
}

// waitFor waits until cond holds for m's set of service, re-checking after
// every Changed signal, and returns when it saw it hold.
func waitFor(t *testing.T, m *Manager, service string, timeout time.Duration, what string, cond func(*InstanceSet) bool) time.Time {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if s := m.Sets()[service]; s != nil && cond(s) {
			return time.Now()
		}
		select {
		case <-m.Changed():
		case <-deadline.C:
			t.Fatalf("%s: not within %v; set %q = %+v", what, timeout, service, m.Sets()[service])
		}
	}
}

func ids(s *InstanceSet) []string {
	var out []string
	for _, in := range s.Instances {
		out = append(out, in.ID)
	}
	return out
}

func hasIDs(want ...string) func(*InstanceSet) bool {
	return func(s *InstanceSet) bool { return s.Known && slices.Equal(ids(s), want) }
}

func TestConsulInstancesAndChanges(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"blocking", Options{}},
		{"stale", Options{AllowStale: true}},
		{"cached-streaming", Options{UseCache: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			_, c := startConsul(t)
			registerWeb(t, c)
			opts := mode.opts
			opts.Health, opts.Logger = c.Health(), testLogger(t)
			m := New(opts)
			m.Watch([]Watch{{Service: "web", Tag: "v1"}})
			stop := run(t, m)
			defer stop()

			waitFor(t, m, "web", 5*time.Second, "three instances", hasIDs("web-1", "web-2", "web-3"))
			s := m.Sets()["web"]
			for i, in := range s.Instances {
				if in.Address != "127.0.0.1" || in.Port != 9001+i || in.Weight != i+1 || !slices.Equal(in.Tags, []string{"v1"}) || in.Node == "" {
					t.Errorf("instance %d = %+v", i, in)
				}
			}
			if !m.Ready() || s.Stale || s.Index == 0 {
				t.Errorf("set = %+v, ready %v", s, m.Ready())
			}

			measure := func(what string, change func() error, cond func(*InstanceSet) bool) {
				t.Helper()
				time.Sleep(50 * time.Millisecond) // let the watcher park in its blocking query
				start := time.Now()
				if err := change(); err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				known := time.Now()
				seen := waitFor(t, m, "web", 5*time.Second, what, cond)
				total, after := seen.Sub(start), seen.Sub(known)
				t.Logf("%s: published %v after the API call started, %v after it returned", what, total.Round(time.Microsecond), after.Round(time.Microsecond))
				if total > time.Second {
					t.Errorf("%s: published after %v, want < 1s", what, total)
				}
			}
			measure("deregister web-2", func() error { return c.Agent().ServiceDeregister("web-2") }, hasIDs("web-1", "web-3"))
			measure("fail TTL of web-3", func() error {
				return c.Agent().UpdateTTL("service:web-3", "", api.HealthCritical)
			}, hasIDs("web-1"))
			measure("warn TTL of web-1 (warning is not passing)", func() error {
				return c.Agent().UpdateTTL("service:web-1", "", api.HealthWarning)
			}, func(s *InstanceSet) bool { return s.Known && len(s.Instances) == 0 && !s.Stale })
			measure("pass TTL of web-3", func() error {
				return c.Agent().UpdateTTL("service:web-3", "", api.HealthPassing)
			}, hasIDs("web-3"))
			measure("service maintenance on web-3", func() error {
				return c.Agent().EnableServiceMaintenance("web-3", "test")
			}, hasIDs())
		})
	}
}

// TestConsulLatency toggles a TTL check many times and reports the
// change→publish latency distribution.
func TestConsulLatency(t *testing.T) {
	_, c := startConsul(t)
	registerWeb(t, c)
	m := New(Options{Health: c.Health(), AllowStale: true, Logger: testLogger(t)})
	m.Watch([]Watch{{Service: "web"}})
	stop := run(t, m)
	defer stop()
	waitFor(t, m, "web", 5*time.Second, "three instances", hasIDs("web-1", "web-2", "web-3"))

	// settled: the watcher is parked in its blocking query when the change
	// comes, as with a change out of the blue. burst: changes back to back,
	// each landing while the watcher waits out its 10–30ms floor.
	for _, phase := range []struct {
		name   string
		settle time.Duration
	}{{"settled", 50 * time.Millisecond}, {"burst", 0}} {
		const n = 40
		var fromStart, fromReturn []time.Duration
		for i := 0; i < n; i++ {
			status, want := api.HealthCritical, hasIDs("web-1", "web-3")
			if i%2 == 1 {
				status, want = api.HealthPassing, hasIDs("web-1", "web-2", "web-3")
			}
			time.Sleep(phase.settle)
			start := time.Now()
			if err := c.Agent().UpdateTTL("service:web-2", "", status); err != nil {
				t.Fatal(err)
			}
			returned := time.Now()
			seen := waitFor(t, m, "web", 5*time.Second, "toggle "+status, want)
			fromStart = append(fromStart, seen.Sub(start))
			fromReturn = append(fromReturn, seen.Sub(returned))
		}
		slices.Sort(fromStart)
		slices.Sort(fromReturn)
		q := func(d []time.Duration, p float64) time.Duration {
			return d[min(len(d)-1, int(p*float64(len(d))))].Round(10 * time.Microsecond)
		}
		t.Logf("%s: change→publish over %d check flips, from API call start: p50 %v, p90 %v, max %v; from its return: p50 %v, p90 %v, max %v",
			phase.name, n, q(fromStart, .5), q(fromStart, .9), q(fromStart, 1),
			q(fromReturn, .5), q(fromReturn, .9), q(fromReturn, 1))
		if fromStart[n-1] > time.Second {
			t.Errorf("%s: max latency %v, want < 1s", phase.name, fromStart[n-1])
		}
	}
}

func TestConsulWatchAtRuntime(t *testing.T) {
	_, c := startConsul(t)
	registerWeb(t, c)
	register(t, c, "api", "api-1", 9100, 1)
	m := New(Options{Health: c.Health(), WaitTime: 30 * time.Second, Logger: testLogger(t)})
	m.Watch([]Watch{{Service: "web"}})
	stop := run(t, m)
	defer stop()
	waitFor(t, m, "web", 5*time.Second, "web", hasIDs("web-1", "web-2", "web-3"))

	m.Watch([]Watch{{Service: "web"}, {Service: "api"}, {Service: "nothing"}})
	waitFor(t, m, "api", 5*time.Second, "api added", hasIDs("api-1"))
	// A service nobody registered: a healthy, empty answer is believed.
	waitFor(t, m, "nothing", 5*time.Second, "unregistered service known and empty", func(s *InstanceSet) bool {
		return s.Known && len(s.Instances) == 0 && !s.Stale
	})
	if !m.Ready() {
		t.Error("not ready with every service answered")
	}

	m.Watch([]Watch{{Service: "api"}})
	if _, ok := m.Sets()["web"]; ok {
		t.Error("web still in Sets after removal")
	}
	// The removed watcher is gone: changes to web publish nothing.
	if err := c.Agent().ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	register(t, c, "api", "api-2", 9101, 1)
	waitFor(t, m, "api", 5*time.Second, "api-2 added", hasIDs("api-1", "api-2"))
	if len(m.Sets()) != 1 {
		t.Errorf("Sets = %v, want only api", m.Sets())
	}

	// Stopping cancels the 30s blocking query at once.
	start := time.Now()
	stop()
	took := time.Since(start)
	t.Logf("Run returned %v after cancel with a 30s blocking query in flight", took)
	if took > time.Second {
		t.Errorf("Run returned after %v, want < 1s", took)
	}
}

// emptySpy passes queries through to the real client and signals every
// successful answer that has no entries.
type emptySpy struct {
	HealthClient
	empty chan time.Time
}

func (s *emptySpy) Service(service, tag string, passing bool, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	entries, meta, err := s.HealthClient.Service(service, tag, passing, q)
	if err == nil && len(entries) == 0 {
		select {
		case s.empty <- time.Now():
		default:
		}
	}
	return entries, meta, err
}

func (s *emptySpy) waitEmpty(t *testing.T, timeout time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-s.empty:
		return at
	case <-time.After(timeout):
		t.Fatalf("no empty answer within %v", timeout)
		return time.Time{}
	}
}

// TestConsulAgentRestart stops the agent mid-watch, then restarts it. A dev
// agent forgets its services, so its first answers are empty: the last set
// must keep serving until the empty answer is confirmed, and an agent whose
// services come back must never cause an empty set.
func TestConsulAgentRestart(t *testing.T) {
	a, c := startConsul(t)
	registerWeb(t, c)
	spy := &emptySpy{HealthClient: c.Health(), empty: make(chan time.Time, 1)}
	m := New(Options{Health: spy, Logger: testLogger(t)})
	m.Watch([]Watch{{Service: "web"}})
	stop := run(t, m)
	defer stop()
	all := hasIDs("web-1", "web-2", "web-3")
	waitFor(t, m, "web", 5*time.Second, "three instances", all)

	// Check every snapshot seen while waiting: none may lose the instances.
	var emptied []*InstanceSet
	neverEmpty := func(cond func(*InstanceSet) bool) func(*InstanceSet) bool {
		return func(s *InstanceSet) bool {
			if len(s.Instances) == 0 {
				emptied = append(emptied, s)
			}
			return cond(s)
		}
	}
	stale := func(s *InstanceSet) bool { return s.Stale && s.Err != nil && all(s) }

	// 1. Agent down: the last set keeps serving, marked stale.
	a.Stop()
	downAt := time.Now()
	waitFor(t, m, "web", 10*time.Second, "stale while consul is down", neverEmpty(stale))
	t.Logf("marked stale %v after the agent stopped: %v", time.Since(downAt).Round(time.Millisecond), m.Sets()["web"].Err)
	if !m.Ready() {
		t.Error("not Ready while serving the last known set")
	}
	time.Sleep(500 * time.Millisecond)
	if s := m.Sets()["web"]; !stale(s) {
		t.Fatalf("while down: %+v", s)
	}

	// 2. Agent back without the services: the first empty answer is held…
	a.Restart()
	firstEmpty := spy.waitEmpty(t, 30*time.Second)
	if s := m.Sets()["web"]; !all(s) {
		t.Fatalf("first empty answer after the restart replaced the set: %+v", s)
	}
	// …through the confirm window (nobody registers them again here), and
	// believed at its end (the services really are gone).
	window := defaultTiming.confirmWindow
	believed := waitFor(t, m, "web", window+10*time.Second, "confirmed empty", func(s *InstanceSet) bool {
		return s.Known && !s.Stale && len(s.Instances) == 0
	})
	t.Logf("empty set believed %v after the first empty answer", believed.Sub(firstEmpty).Round(time.Millisecond))
	if d := believed.Sub(firstEmpty); d < window-time.Second {
		t.Errorf("empty set believed %v after the first empty answer, want the confirm window (%v)", d, window)
	}
	registerWeb(t, c)
	waitFor(t, m, "web", 5*time.Second, "services back", all)

	// 3. Restart again, re-registering at once (what a sidecar does): never empty.
	a.Stop()
	waitFor(t, m, "web", 10*time.Second, "stale again", neverEmpty(stale))
	a.Restart()
	upAt := time.Now()
	registerWeb(t, c)
	waitFor(t, m, "web", 30*time.Second, "recovered after restart", neverEmpty(func(s *InstanceSet) bool {
		return !s.Stale && s.Err == nil && all(s)
	}))
	t.Logf("recovered %v after the agent restarted", time.Since(upAt).Round(time.Millisecond))

	// It follows changes again.
	if err := c.Agent().UpdateTTL("service:web-1", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitFor(t, m, "web", 5*time.Second, "change after restart", neverEmpty(hasIDs("web-2", "web-3")))
	if len(emptied) > 0 {
		t.Errorf("an empty set was published while the agent restarted: %+v", emptied[0])
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// load runs workers request loops against url until stopped and counts the
// answers: any error or non-200 is a failure the client saw.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(url string, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: workers}}
	for i := 0; i < workers; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				resp, err := c.Get(url)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					l.fail(fmt.Sprintf("%d %q %v", resp.StatusCode, body, err))
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

func (l *load) fail(s string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, s)
	}
	l.mu.Unlock()
}

// stop ends the loops and returns the counts.
func (l *load) stop() (ok, failed int64, samples []string) {
	l.cancel()
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.failures
}

// kill makes a backend vanish as a crashed process does: its listener closes
// (new connections are refused) and its open connections are cut.
func (b *backend) kill() {
	b.srv.Listener.Close()
	b.srv.CloseClientConnections()
}

// seen returns which backends answered n requests to url.
func seen(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for i := 0; i < n; i++ {
		code, body := get(t, url)
		out[fmt.Sprintf("%d %s", code, body)]++
	}
	return out
}

const healthConfig = `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
service "user" {
  response_timeout = "500ms"
  retries          = 2
  health_check {
    path                = "/health"
    interval            = "200ms"
    timeout             = "200ms"
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }
  outlier {
    consecutive_failures = 3
    base_ejection_time   = "1s"
  }
}
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
`

// healthBackend answers its name, and /health with 200 unless sick is set.
func healthBackend(t *testing.T, name string, sick *atomic.Bool) *backend {
	return startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			if sick.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		io.WriteString(w, name)
	})
}

func TestActiveCheckOverridesConsul(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	var sick, fine atomic.Bool
	b1, b2 := healthBackend(t, "user-1", &sick), healthBackend(t, "user-2", &fine)
	register(t, c, "user", b1)
	register(t, c, "user", b2)
	f := startFerry(t, agent.HTTPAddr, healthConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/", 2)

	// Consul still calls user-1 passing; ferry's own check says otherwise.
	start := time.Now()
	sick.Store(true)
	waitFor(t, 3*time.Second, "user-1 out of rotation", func() bool {
		s := seen(t, f.URL+"/api/user/", 6)
		return len(s) == 1 && s["200 user-2"] == 6
	})
	t.Logf("failing /health dropped the instance after %v (interval 200ms × threshold 2)", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	sick.Store(false)
	waitForInstances(t, f, "/api/user/", 2)
	t.Logf("passing /health restored it after %v", time.Since(start).Round(time.Millisecond))
}

// threeInstances starts Consul, three user backends registered in it and a
// ferry routing over them.
func threeInstances(t *testing.T) (*consultest.Agent, *ferry, [3]*backend) {
	t.Helper()
	agent := consultest.Start(t)
	c := agent.Client()
	b1, b2, b3 := startBackend(t, "user-1", nil), startBackend(t, "user-2", nil), startBackend(t, "user-3", nil)
	for _, b := range []*backend{b1, b2, b3} {
		register(t, c, "user", b)
	}
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/", 3)
	return agent, f, [3]*backend{b1, b2, b3}
}

func TestConsulOutageKeepsServing(t *testing.T) {
	agent, f, b := threeInstances(t)
	b3 := b[2]

	l := startLoad(f.URL+"/api/user/", 4)
	time.Sleep(300 * time.Millisecond)
	agent.Stop()
	time.Sleep(time.Second)
	b3.kill() // dies while Consul cannot say so
	// The fallback TCP probe (every 5 s, down after 2 failures) must notice.
	waitFor(t, 15*time.Second, "fallback probe to drop user-3", func() bool {
		return strings.Contains(f.Logs(), "active check failing") && strings.Contains(f.Logs(), b3.Addr)
	})
	ok, failed, samples := l.stop()
	t.Logf("Consul down, one instance killed: %d requests, %d failed", ok+failed, failed)
	if failed != 0 {
		t.Errorf("%d requests failed during the Consul outage, want 0; e.g. %v", failed, samples)
	}
	s := seen(t, f.URL+"/api/user/", 12)
	if s["200 user-3"] != 0 || s["200 user-1"] == 0 || s["200 user-2"] == 0 {
		t.Errorf("after the outage, got %v; want only user-1 and user-2", s)
	}
}

func TestBackendKilledUnderLoad(t *testing.T) {
	_, f, b := threeInstances(t)
	b2 := b[1]

	l := startLoad(f.URL+"/api/user/", 8)
	time.Sleep(500 * time.Millisecond)
	b2.kill() // still registered and passing in Consul
	time.Sleep(1500 * time.Millisecond)
	ok, failed, samples := l.stop()
	t.Logf("backend killed under load: %d requests, %d failed", ok+failed, failed)
	if failed != 0 {
		t.Errorf("%d client-visible errors, want 0; e.g. %v", failed, samples)
	}
}

func TestHangingBackendTimesOut(t *testing.T) {
	agent := consultest.Start(t)
	release := make(chan struct{})
	b := startBackend(t, "user-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	register(t, agent.Client(), "user", b)
	f := startFerry(t, agent.HTTPAddr, healthConfig)
	f.WaitReady()
	start := time.Now()
	waitFor(t, 5*time.Second, "a routed request", func() bool {
		start = time.Now()
		return statusOf(f.URL+"/api/user/") == http.StatusGatewayTimeout
	})
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("504 after %v, want about response_timeout (500ms)", d)
	}
}

func TestFlappingInstanceCausesNoErrors(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	b1, b2 := startBackend(t, "user-1", nil), startBackend(t, "user-2", nil)
	register(t, c, "user", b1)
	register(t, c, "user", b2)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/", 2)

	l := startLoad(f.URL+"/api/user/", 4)
	for i := 0; i < 30; i++ {
		status := api.HealthCritical
		if i%2 == 1 {
			status = api.HealthPassing
		}
		if err := c.Agent().UpdateTTL("service:user-1", "", status); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ok, failed, samples := l.stop()
	t.Logf("instance flapping 30 times: %d requests, %d failed", ok+failed, failed)
	if failed != 0 {
		t.Errorf("%d requests failed while an instance flapped, want 0; e.g. %v", failed, samples)
	}
}

func TestOutlierEjectionAndReturn(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	var broken atomic.Bool
	broken.Store(true)
	var badHits atomic.Int64
	bad := startBackend(t, "user-bad", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return // its health endpoint lies: only traffic shows it is broken
		}
		badHits.Add(1)
		if broken.Load() {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "user-bad")
	})
	good := startBackend(t, "user-good", nil)
	register(t, c, "user", bad)
	register(t, c, "user", good)
	f := startFerry(t, agent.HTTPAddr, healthConfig)
	f.WaitReady()

	// Round robin sends every other request to the bad instance until it has
	// failed consecutive_failures (3) times in a row.
	fails := 0
	for i := 0; i < 20; i++ {
		if code, _ := get(t, f.URL+"/api/user/"); code == 500 {
			fails++
		}
	}
	if fails != 3 {
		t.Errorf("clients saw %d answers of 500, want 3 (then the instance is ejected)", fails)
	}
	ejectedAt := time.Now()
	hits := badHits.Load()
	for i := 0; i < 10; i++ {
		if code, body := get(t, f.URL+"/api/user/"); code != 200 || body != "user-good" {
			t.Fatalf("during the ejection got %d %q, want 200 user-good", code, body)
		}
	}
	if badHits.Load() != hits {
		t.Errorf("ejected instance got %d requests during its ejection", badHits.Load()-hits)
	}
	if !strings.Contains(f.Logs(), "instance ejected") {
		t.Errorf("no \"instance ejected\" log line")
	}

	broken.Store(false)
	waitFor(t, 3*time.Second, "the instance to return after base_ejection_time", func() bool {
		_, body := get(t, f.URL+"/api/user/")
		return body == "user-bad"
	})
	if d := time.Since(ejectedAt); d < 900*time.Millisecond {
		t.Errorf("instance back after %v, before base_ejection_time (1s)", d)
	}
}

// Package compose runs the reference docker-compose deployment for real (the
// repository's docker-compose.yml with docker-compose.offline.yml) and drives
// the faults operators meet under steady request loops: a rolling restart, a
// sidecar stopped, scaling up and down, a sidecar cut off from Consul, a
// sidecar stopped while cut off from Consul and while Consul hangs (frozen),
// and Consul killed for a minute. It needs a Docker engine with Compose and the
// images of `make image`; `make compose-test` runs it (FERRY_COMPOSE=1).
package compose

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// figure is what one fault cost the request loops, and how long it took to
// converge.
type figure struct {
	fault        string
	sent, failed int64
	convergence  []string
	duration     time.Duration
}

// deregisterDelay is examples/compose/*.hcl's deregister_delay.
const deregisterDelay = 2 * time.Second

func TestComposeTopology(t *testing.T) {
	if os.Getenv("FERRY_COMPOSE") != "1" {
		t.Skip("the docker-compose test runs with FERRY_COMPOSE=1 (make compose-test; make test when `docker info` answers)")
	}
	started := time.Now()
	s := newStack(t)
	t.Cleanup(s.down)

	t.Logf("project %s: edge on 127.0.0.1:%d, its admin API on :%d, Consul on :%d", s.project, s.edge, s.admin, s.consul)
	s.must(5*time.Minute, "up", "-d", "--no-build")
	consul, err := api.NewClient(&api.Config{Address: fmt.Sprintf("127.0.0.1:%d", s.consul)})
	if err != nil {
		t.Fatal(err)
	}
	edgeAdmin := fmt.Sprintf("http://127.0.0.1:%d", s.admin)

	// Everything becomes healthy: Docker's checks (ferry's /healthz, the
	// apps' /health), Consul's passing sets, and the ferries' routing tables.
	services := []string{"consul", "edge", "user-1", "user-1-sidecar", "user-2", "user-2-sidecar", "order", "order-sidecar"}
	took, err := waitFor(2*time.Minute, 500*time.Millisecond, func() (bool, string) {
		for _, svc := range services {
			if h := s.health(svc); h != "healthy" {
				return false, svc + " is " + h
			}
		}
		return true, ""
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("every container healthy %s after up", took.Round(time.Second))
	orderAdmin := fmt.Sprintf("http://%s:9901", s.containerIP("order", "default"))
	converged := func(users ...string) func() (bool, string) {
		return func() (bool, string) {
			for svc, want := range map[string][]string{"user": users, "order": {"order-1"}} {
				got, err := passing(consul, svc)
				if err != nil || !slices.Equal(got, want) {
					return false, fmt.Sprintf("Consul passing %s: %v %v, want %v", svc, got, err, want)
				}
			}
			for base, svcs := range map[string][]string{edgeAdmin: {"user", "order"}, orderAdmin: {"user"}} {
				ups, err := upstreams(base)
				if err != nil {
					return false, err.Error()
				}
				for _, svc := range svcs {
					u := ups[svc]
					want := users
					if svc == "order" {
						want = []string{"order-1"}
					}
					if u.Stale || !slices.Equal(u.healthyIDs(), want) {
						return false, fmt.Sprintf("%s routes %s to %v (stale %v), want %v", base, svc, u.healthyIDs(), u.Stale, want)
					}
				}
			}
			return true, ""
		}
	}
	if _, err := waitFor(time.Minute, 200*time.Millisecond, converged("user-1", "user-2")); err != nil {
		t.Fatal(err)
	}
	// The edge's status page, from the host, on its published admin port.
	if err := statusPage(edgeAdmin, "user", "order"); err != nil {
		t.Fatal(err)
	}

	l := startLoad(fmt.Sprintf("http://127.0.0.1:%d", s.edge), 4)
	defer l.stop()
	var figures []figure
	// measure runs one fault under the loops and records its figures; a
	// failed request is a test failure.
	measure := func(name string, fault func(t *testing.T, f *figure)) {
		t.Helper()
		sent0, failed0 := l.counts()
		f := figure{fault: name}
		start := time.Now()
		ran := false // false: -run left this fault out
		t.Run(name, func(t *testing.T) { ran = true; fault(t, &f) })
		if !ran {
			return
		}
		f.duration = time.Since(start)
		sent1, failed1 := l.counts()
		f.sent, f.failed = sent1-sent0, failed1-failed0
		figures = append(figures, f)
		t.Logf("%s: %d requests sent, %d failed, %s; %s", name, f.sent, f.failed, f.duration.Round(100*time.Millisecond), strings.Join(f.convergence, "; "))
		if f.failed > 0 {
			t.Errorf("%s: %d of %d requests failed: %s", name, f.failed, f.sent, strings.Join(l.failureSamples(), "\n"))
		}
	}

	measure("reach every service", func(t *testing.T, f *figure) {
		took, err := waitFor(30*time.Second, 100*time.Millisecond, func() (bool, string) {
			for _, name := range []string{"user-1", "user-2", "order"} {
				if first, _ := l.seen(name); first.IsZero() {
					return false, "no answer from " + name + " yet"
				}
			}
			return true, ""
		})
		if err != nil {
			t.Fatal(err)
		}
		f.convergence = append(f.convergence, fmt.Sprintf("user-1, user-2 and order (through its sidecar) answered within %s", took.Round(10*time.Millisecond)))
	})

	measure("docker run with CONSUL_HTTP_ADDR", func(t *testing.T, f *figure) { dockerRun(t, s, f) })
	measure("rolling restart of user", func(t *testing.T, f *figure) { rollingRestart(t, s, consul, converged, f) })
	measure("docker stop of a sidecar", func(t *testing.T, f *figure) { stopSidecar(t, s, consul, l, converged, f) })
	measure("scale user up and down", func(t *testing.T, f *figure) { scaleUpDown(t, s, consul, l, converged, f) })
	measure("sidecar cut off from Consul", func(t *testing.T, f *figure) { partitionSidecar(t, s, orderAdmin, converged, f) })
	measure("docker stop of a sidecar cut off from Consul", func(t *testing.T, f *figure) { stopCutOffSidecar(t, s, consul, l, converged, f) })
	measure("docker stop of a sidecar while Consul hangs", func(t *testing.T, f *figure) { stopSidecarConsulHung(t, s, consul, converged, f) })
	measure("Consul killed for 60 s", func(t *testing.T, f *figure) { killConsul(t, s, edgeAdmin, orderAdmin, converged, f) })

	l.stop()
	var b strings.Builder
	fmt.Fprintf(&b, "\n| fault | requests sent | failed | time | convergence |\n|---|---:|---:|---:|---|\n")
	for _, f := range figures {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s |\n", f.fault, f.sent, f.failed, f.duration.Round(time.Second), strings.Join(f.convergence, "; "))
	}
	sent, failed := l.counts()
	fmt.Fprintf(&b, "| total | %d | %d | %s | |\n", sent, failed, time.Since(started).Round(time.Second))
	t.Log(b.String())
}

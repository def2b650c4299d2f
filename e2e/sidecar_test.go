package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// app is an application process stand-in on its own loopback host: a real
// HTTP server that can be stopped gracefully, as a container's SIGTERM would.
type app struct {
	Host string
	Port int
	srv  *http.Server
	done chan struct{}
}

func startApp(t *testing.T, host string, h http.HandlerFunc) *app {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v (this test needs the 127.0.0.0/8 loopback range)", host, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/", h)
	a := &app{Host: host, Port: ln.Addr().(*net.TCPAddr).Port, srv: &http.Server{Handler: mux}, done: make(chan struct{})}
	go func() { a.srv.Serve(ln); close(a.done) }()
	t.Cleanup(a.stop)
	return a
}

// stop shuts the app down gracefully: in-flight requests finish.
func (a *app) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.srv.Shutdown(ctx)
	<-a.done
}

// sidecarConfig is a ferry sidecar that registers its app and routes the
// given extra HCL (its outbound routes).
func sidecarConfig(service, id string, a *app, routes string) string {
	return fmt.Sprintf(`
listen = "%%LISTEN%%"
admin  = "%%ADMIN%%"
shutdown_timeout = "5s"
consul {
  address = "%%CONSUL%%"
}
local_service {
  name    = %q
  id      = %q
  address = %q
  port    = %d
  check {
    http     = "http://%s:%d/health"
    interval = "200ms"
    timeout  = "1s"
  }
  deregister_delay = "500ms"
}
%s`, service, id, a.Host, a.Port, a.Host, a.Port, routes)
}

const userRoute = `
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
`

// passing reports whether Consul lists the instance id of service as passing.
func passing(c *api.Client, service, id string) bool {
	entries, _, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Service.ID == id {
			return true
		}
	}
	return false
}

// TestSidecarTopologyRollingRestart runs the docker-compose topology natively:
// an edge ferry, an order service calling the user service through its own
// sidecar, and two user replicas each with a sidecar that registers it; then
// restarts the user replicas one by one under steady traffic.
func TestSidecarTopologyRollingRestart(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()

	userApp := func(host, name string) *app {
		return startApp(t, host, func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(5 * time.Millisecond) // requests are in flight when a replica stops
			io.WriteString(w, name)
		})
	}
	startUser := func(i int) (*app, *ferry) {
		host := fmt.Sprintf("127.0.0.%d", 10+i)
		id := fmt.Sprintf("user-%d", i)
		a := userApp(host, id)
		f := startFerryOn(t, host, agent.HTTPAddr, sidecarConfig("user", id, a, ""))
		waitFor(t, 10*time.Second, id+" passing in Consul", func() bool { return passing(c, "user", id) })
		return a, f
	}
	users := map[int]*app{}
	sidecars := map[int]*ferry{}
	for i := 1; i <= 2; i++ {
		users[i], sidecars[i] = startUser(i)
	}

	// The order service calls the user service through its own sidecar.
	const orderHost = "127.0.0.13"
	var orderSidecar *ferry
	orderClient := &http.Client{Timeout: 10 * time.Second}
	order := startApp(t, orderHost, func(w http.ResponseWriter, r *http.Request) {
		resp, err := orderClient.Get(orderSidecar.URL + "/api/user/" + strings.TrimPrefix(r.URL.Path, "/api/order/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		w.WriteHeader(resp.StatusCode)
		fmt.Fprintf(w, "order via %s", body)
	})
	orderSidecar = startFerryOn(t, orderHost, agent.HTTPAddr, sidecarConfig("order", "order-1", order, userRoute))
	orderSidecar.WaitReady()
	waitFor(t, 10*time.Second, "order-1 passing in Consul", func() bool { return passing(c, "order", "order-1") })

	// The entry point users curl.
	edge := startFerryOn(t, "127.0.0.10", agent.HTTPAddr, `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}
`)
	edge.WaitReady()
	waitFor(t, 10*time.Second, "both user replicas reachable through the edge", func() bool {
		s := seen(t, edge.URL+"/api/order/1", 6)
		return s["200 order via user-1"] > 0 && s["200 order via user-2"] > 0
	})

	l := startLoad(edge.URL+"/api/order/1", 4)
	time.Sleep(300 * time.Millisecond)
	for i := 1; i <= 2; i++ {
		// The deploy: SIGTERM to the sidecar (deregister, wait
		// deregister_delay, drain), then stop the app, then start the new one.
		start := time.Now()
		sidecars[i].Signal(syscall.SIGTERM)
		if code := sidecars[i].Wait(10 * time.Second); code != 0 {
			t.Fatalf("user-%d sidecar exited %d, want 0", i, code)
		}
		if passing(c, "user", fmt.Sprintf("user-%d", i)) {
			t.Fatalf("user-%d still registered after its sidecar stopped", i)
		}
		users[i].stop()
		t.Logf("user-%d: sidecar deregistered, delayed, drained and exited in %v", i, time.Since(start).Round(time.Millisecond))
		users[i], sidecars[i] = startUser(i)
		time.Sleep(300 * time.Millisecond)
	}
	ok, failed, samples := l.stop()
	t.Logf("rolling restart of 2 user replicas: %d requests through edge → order → user, %d failed", ok+failed, failed)
	if failed != 0 {
		t.Errorf("%d requests failed during the rolling restart, want 0; e.g. %v", failed, samples)
	}
	if ok < 100 {
		t.Errorf("only %d requests completed: the load did not run", ok)
	}
}

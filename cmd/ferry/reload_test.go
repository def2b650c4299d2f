package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/internal/consultest"
)

// inProcess is an app run in-process by a test, against a real Consul agent.
type inProcess struct {
	a       *app
	path    string
	listen  string
	admin   string
	consul  string
	logs    *syncBuffer
	client  *http.Client
	cancel  context.CancelFunc
	stopped chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testConfig(listen, admin, consulAddr, routes string) string {
	return "listen = \"" + listen + "\"\nadmin = \"" + admin + "\"\nshutdown_timeout = \"2s\"\n" +
		"consul {\n  address = \"" + consulAddr + "\"\n}\n" + routes
}

func routeBlock(name, service string) string {
	return "route \"" + name + "\" {\n  path_prefix = \"/" + name + "\"\n  service = \"" + service + "\"\n}\n"
}

func backendFor(t *testing.T, c *api.Client, service, id string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, id)
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: "127.0.0.1", Port: port,
		Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startInProcess writes routes to a config file and runs the app on it.
func startInProcess(t *testing.T, consulAddr, routes string) *inProcess {
	t.Helper()
	ports := consultest.FreePorts(t, 2)
	p := &inProcess{
		path:    filepath.Join(t.TempDir(), "ferry.hcl"),
		listen:  "127.0.0.1:" + strconv.Itoa(ports[0]),
		admin:   "127.0.0.1:" + strconv.Itoa(ports[1]),
		consul:  consulAddr,
		logs:    &syncBuffer{},
		client:  &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}},
		stopped: make(chan error, 1),
	}
	p.write(t, routes)
	cfg, diags := config.Load(p.path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: p.logs})
	a, err := newApp(cfg, p.path, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.a = a
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.stopped <- a.run(ctx) }()
	p.waitFor(t, "admin /healthz", func() bool { code, _ := p.get("http://" + p.admin + "/healthz"); return code == 200 })
	return p
}

func (p *inProcess) write(t *testing.T, routes string) {
	t.Helper()
	if err := os.WriteFile(p.path, []byte(testConfig(p.listen, p.admin, p.consul, routes)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p *inProcess) get(url string) (int, string) {
	resp, err := p.client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *inProcess) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, p.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop cancels the app and waits for run to return.
func (p *inProcess) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.stopped:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not return after cancel; log:\n%s", p.logs)
	}
	p.client.CloseIdleConnections()
}

func TestReloadDropsServiceWithoutLeaks(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	backendFor(t, c, "user", "user-1")
	backendFor(t, c, "order", "order-1")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	p := startInProcess(t, agent.HTTPAddr, routeBlock("users", "user")+routeBlock("orders", "order"))
	p.waitFor(t, "both routes", func() bool {
		c1, b1 := p.get("http://" + p.listen + "/users/1")
		c2, b2 := p.get("http://" + p.listen + "/orders/1")
		return c1 == 200 && b1 == "user-1" && c2 == 200 && b2 == "order-1"
	})

	// An invalid edit changes nothing and is counted.
	if err := os.WriteFile(p.path, []byte("route \"x\" {\n  path_prefix = 1\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var invalid *invalidConfigError
	if err := p.a.reload("test"); !errors.As(err, &invalid) {
		t.Fatalf("invalid config: got %v, want an invalidConfigError", err)
	}
	if !strings.Contains(p.logs.String(), p.path+":2,") {
		t.Errorf("log has no diagnostic at %s:2,…", p.path)
	}

	p.write(t, routeBlock("users", "user"))
	if err := p.a.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if _, ok := p.a.discovery.Sets()["order"]; ok {
		t.Errorf("order is still watched after its route was removed")
	}
	if !strings.Contains(p.logs.String(), "stopped watching service: service=order") {
		t.Errorf("log does not show the order watcher stopping")
	}
	if code, _ := p.get("http://" + p.listen + "/orders/1"); code != 404 {
		t.Errorf("removed route: got %d, want 404", code)
	}
	if code, body := p.get("http://" + p.listen + "/users/1"); code != 200 || body != "user-1" {
		t.Errorf("kept route: got %d %q", code, body)
	}
	if ok, failed := p.a.reloadCounts(); ok < 1 || failed < 1 {
		t.Errorf("reload counts: ok %d, failed %d; want at least 1 each", ok, failed)
	}
	p.stop(t)
}

func TestReloadConsulUnreachableKeepsInstances(t *testing.T) {
	agent := consultest.Start(t)
	backendFor(t, agent.Client(), "user", "user-1")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	p := startInProcess(t, agent.HTTPAddr, routeBlock("users", "user"))
	p.waitFor(t, "users route", func() bool { code, _ := p.get("http://" + p.listen + "/users/1"); return code == 200 })

	// Point the consul block at a port nobody listens on: the new connection
	// never answers, yet the route keeps its last known instance.
	p.a.lc.consulWait = 300 * time.Millisecond
	p.consul = "127.0.0.1:" + strconv.Itoa(consultest.FreePorts(t, 1)[0])
	p.write(t, routeBlock("users", "user"))
	if err := p.a.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	for i := 0; i < 10; i++ {
		if code, body := p.get("http://" + p.listen + "/users/1"); code != 200 || body != "user-1" {
			t.Fatalf("after switching to an unreachable Consul: got %d %q, want 200 user-1", code, body)
		}
	}
	set := p.a.discovery.Sets()["user"]
	if set == nil || !set.Known || !set.Stale || len(set.Instances) != 1 {
		t.Errorf("user set after the switch: %+v, want the last known instance, stale", set)
	}

	// Back to the real agent: fresh answers replace the stand-in.
	p.consul = agent.HTTPAddr
	p.write(t, routeBlock("users", "user"))
	if err := p.a.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if set := p.a.discovery.Sets()["user"]; set == nil || set.Stale || len(set.Instances) != 1 {
		t.Errorf("user set after switching back: %+v, want fresh", set)
	}
	p.stop(t)
}

func TestConfigFingerprintSeesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(dir, "..v1"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "..v1", "ferry.hcl"), []byte("a"), 0o644))
	must(os.Symlink("..v1", filepath.Join(dir, "..data")))
	must(os.Symlink("..data/ferry.hcl", filepath.Join(dir, "ferry.hcl")))
	before := configFingerprint(dir)
	if got := configFingerprint(dir); got != before {
		t.Fatalf("fingerprint changed without a change:\n%s\n%s", before, got)
	}
	// An unrelated file (an editor's swap file) does not count.
	must(os.WriteFile(filepath.Join(dir, ".ferry.hcl.swp"), []byte("x"), 0o644))
	if got := configFingerprint(dir); got != before {
		t.Errorf("a swap file changed the fingerprint")
	}
	must(os.Mkdir(filepath.Join(dir, "..v2"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "..v2", "ferry.hcl"), []byte("b"), 0o644))
	must(os.Symlink("..v2", filepath.Join(dir, "..tmp")))
	must(os.Rename(filepath.Join(dir, "..tmp"), filepath.Join(dir, "..data")))
	if got := configFingerprint(dir); got == before {
		t.Errorf("the symlink swap did not change the fingerprint")
	}
}

func TestWatchConfigDebounces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.hcl")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchConfig(ctx, path, func() { changes <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()

	// A burst of writes, each within the settle time of the last, is one change.
	for i := 0; i < 6; i++ {
		if err := os.WriteFile(path, []byte(strings.Repeat("b", i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(configSettle / 3)
	}
	select {
	case <-changes:
	case <-time.After(3 * time.Second):
		t.Fatal("no change reported")
	}
	select {
	case <-changes:
		t.Fatal("one burst of writes reported twice")
	case <-time.After(2 * configPollInterval):
	}
}

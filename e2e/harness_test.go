package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// ferryBin is the ferry binary under test, built once by TestMain with -race.
var ferryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryBin = filepath.Join(dir, "ferry")
	build := exec.Command("go", "build", "-race", "-o", ferryBin, "../cmd/ferry")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building ferry:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// backend is a real HTTP server standing for one instance of a service.
type backend struct {
	Name string
	Addr string // 127.0.0.1:port
	Port int
	srv  *httptest.Server
}

// startBackend starts a backend that answers "<name>" on every path, or runs h
// when it is not nil.
func startBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			io.WriteString(w, name)
		}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().(*net.TCPAddr)
	return &backend{Name: name, Addr: addr.String(), Port: addr.Port, srv: srv}
}

// register registers b as an instance of service with a passing TTL check
// whose ID is "service:<id>".
func register(t *testing.T, c *api.Client, service string, b *backend) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: b.Name, Name: service, Address: "127.0.0.1", Port: b.Port,
		Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("register %s: %v", b.Name, err)
	}
}

// ferry is a running ferry process.
type ferry struct {
	URL      string // data plane, http://127.0.0.1:port
	AdminURL string
	Config   string // path of the config file

	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  bytes.Buffer // stdout: the access log
	logs bytes.Buffer // stderr: ferry's own log
}

// startFerry writes cfg (HCL, with %LISTEN%, %ADMIN% and %CONSUL% replaced) and
// runs ferry with it until the test ends. It waits for /healthz.
func startFerry(t *testing.T, consulAddr, cfg string) *ferry {
	t.Helper()
	return startFerryOn(t, "127.0.0.1", consulAddr, cfg)
}

// startFerryOn is startFerry with its listeners on another loopback address
// (127.0.0.x), as a sidecar on its own host would be.
func startFerryOn(t *testing.T, host, consulAddr, cfg string) *ferry {
	t.Helper()
	path, listen, admin := writeConfig(t, host, consulAddr, cfg)
	return runFerry(t, path, listen, admin)
}

// writeConfig writes cfg with %LISTEN% and %ADMIN% replaced by free ports on
// host and %CONSUL% by consulAddr, and returns its path and the addresses.
func writeConfig(t *testing.T, host, consulAddr, cfg string) (path, listen, admin string) {
	t.Helper()
	ports := consultest.FreePorts(t, 2)
	listen = host + ":" + strconv.Itoa(ports[0])
	admin = host + ":" + strconv.Itoa(ports[1])
	cfg = strings.NewReplacer("%LISTEN%", listen, "%ADMIN%", admin, "%CONSUL%", consulAddr).Replace(cfg)
	path = filepath.Join(t.TempDir(), "ferry.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, listen, admin
}

// runFerry runs ferry with -config path (a file or directory already in
// place, listening on listen and admin) until the test ends, and waits for
// /healthz. On failure the test log shows ferry's whole log.
func runFerry(t *testing.T, path, listen, admin string) *ferry {
	t.Helper()
	return runFerryLogging(t, path, listen, admin, "debug", 0)
}

// runFerryLogging is runFerry at a log level, showing only the last tail
// lines of ferry's log on failure (0: all of it).
func runFerryLogging(t *testing.T, path, listen, admin, level string, tail int) *ferry {
	t.Helper()
	f := &ferry{URL: "http://" + listen, AdminURL: "http://" + admin, Config: path, t: t, done: make(chan struct{})}
	f.cmd = exec.Command(ferryBin, "run", "-config", path, "-log-level", level)
	f.cmd.Stdout = &lockedWriter{mu: &f.mu, w: &f.out}
	f.cmd.Stderr = &lockedWriter{mu: &f.mu, w: &f.logs}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		f.Signal(syscall.SIGKILL)
		<-f.done
		if !t.Failed() {
			return
		}
		if tail == 0 {
			t.Logf("ferry log:\n%s", f.Logs())
			return
		}
		lines := strings.Split(strings.TrimSpace(f.Logs()), "\n")
		t.Logf("ferry log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-tail):], "\n"))
	})
	waitFor(t, 15*time.Second, "ferry /healthz", func() bool { return statusOf(f.AdminURL+"/healthz") == 200 })
	return f
}

// Signal sends sig to the ferry process.
func (f *ferry) Signal(sig os.Signal) {
	if f.cmd.Process != nil {
		f.cmd.Process.Signal(sig)
	}
}

// Wait waits for ferry to exit and returns its exit code.
func (f *ferry) Wait(timeout time.Duration) int {
	f.t.Helper()
	select {
	case <-f.done:
		return f.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		f.t.Fatalf("ferry did not exit within %v", timeout)
		return -1
	}
}

// Logs returns ferry's own log so far; AccessLog its access log.
func (f *ferry) Logs() string      { f.mu.Lock(); defer f.mu.Unlock(); return f.logs.String() }
func (f *ferry) AccessLog() string { f.mu.Lock(); defer f.mu.Unlock(); return f.out.String() }

// WaitReady waits for /readyz to answer 200.
func (f *ferry) WaitReady() {
	f.t.Helper()
	waitFor(f.t, 15*time.Second, "ferry /readyz", func() bool {
		return statusOf(f.AdminURL+"/readyz") == 200
	})
}

// get performs a GET through ferry and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func statusOf(url string) int {
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// client is a plain client with its own keep-alive pool and a timeout.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

// waitFor polls cond every 10 ms until it is true or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

const basicConfig = `
listen = "%LISTEN%"
admin  = "%ADMIN%"
shutdown_timeout = "5s"
consul {
  address = "%CONSUL%"
}
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// requestLoops sends GETs to each of paths through f, one loop per path, a
// request every interval() apart, until the returned stop is called (which
// waits for the loops to end).
func requestLoops(f *ferry, paths []string, interval func() time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, path := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTimer(interval())
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					statusOf(f.URL + path)
					tick.Reset(interval())
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

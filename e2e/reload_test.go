package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// reloadConfig renders a configuration for f's current addresses (or the
// given ones) with the extra HCL in body.
func reloadConfig(listen, admin, consulAddr, consulExtra, body string) string {
	return fmt.Sprintf(`
listen = %q
admin  = %q
shutdown_timeout = "5s"
consul {
  address = %q
%s}
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
%s`, listen, admin, consulAddr, consulExtra, body)
}

const ordersRoute = `
route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}
`

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

// writeAtomic replaces path's content the way editors and config management
// do: write a temporary file beside it, then rename it over path.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type reloadAnswer struct {
	Status      string `json:"status"`
	Error       string `json:"error"`
	Diagnostics []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Summary string `json:"summary"`
		Detail  string `json:"detail"`
	} `json:"diagnostics"`
}

// postReload calls POST /v1/reload on adminURL.
func postReload(t *testing.T, adminURL string) (int, reloadAnswer) {
	t.Helper()
	resp, err := client.Post(adminURL+"/v1/reload", "", nil)
	if err != nil {
		t.Fatalf("POST /v1/reload: %v", err)
	}
	defer resp.Body.Close()
	var ans reloadAnswer
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatalf("POST /v1/reload: %d, body %q: %v", resp.StatusCode, b, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST /v1/reload: Content-Type %q, want application/json", ct)
	}
	return resp.StatusCode, ans
}

// answersWith reports whether GET url answers 200 with body want.
func answersWith(url, want string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && string(b) == want
}

func TestReloadOnFileEditAndSIGHUP(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	register(t, c, "user", startBackend(t, "user-1", nil))
	register(t, c, "order", startBackend(t, "order-1", nil))
	register(t, c, "pay", startBackend(t, "pay-1", nil))
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	listen, admin := hostPort(f.URL), hostPort(f.AdminURL)
	if code := statusOf(f.URL + "/api/order/1"); code != http.StatusNotFound {
		t.Fatalf("before the edit: /api/order/1 got %d, want 404", code)
	}

	// A file edit is picked up by the watcher.
	start := time.Now()
	writeAtomic(t, f.Config, reloadConfig(listen, admin, agent.HTTPAddr, "", ordersRoute))
	waitFor(t, 2*time.Second, "the route added by a file edit", func() bool {
		return answersWith(f.URL+"/api/order/1", "order-1")
	})
	t.Logf("route added by a file edit served after %v", time.Since(start).Round(time.Millisecond))

	// SIGHUP reloads at once (the watcher would too, but later).
	payRoute := "route \"pay\" {\n  path_prefix = \"/api/pay\"\n  service = \"pay\"\n}\n"
	writeAtomic(t, f.Config, reloadConfig(listen, admin, agent.HTTPAddr, "", ordersRoute+payRoute))
	start = time.Now()
	f.Signal(syscall.SIGHUP)
	waitFor(t, 2*time.Second, "the route added before SIGHUP", func() bool {
		return answersWith(f.URL+"/api/pay/1", "pay-1")
	})
	t.Logf("route added before a SIGHUP served after %v", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(f.Logs(), "trigger=SIGHUP") {
		t.Errorf("log has no reload triggered by SIGHUP")
	}
	if !answersWith(f.URL+"/api/user/1", "user-1") {
		t.Errorf("the unchanged route stopped answering")
	}
	select {
	case <-f.done:
		t.Fatalf("ferry exited after SIGHUP")
	default:
	}
}

func TestReloadInvalidEditKeepsRunning(t *testing.T) {
	agent := consultest.Start(t)
	register(t, agent.Client(), "user", startBackend(t, "user-1", nil))
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	listen, admin := hostPort(f.URL), hostPort(f.AdminURL)
	waitForInstances(t, f, "/api/user/1", 1)

	// Line 9 holds path_prefix, its value at column 17; line 13 the balance.
	bad := strings.Replace(reloadConfig(listen, admin, agent.HTTPAddr, "", "service \"user\" {\n  balance = \"fastest\"\n}\n"),
		`"/api/user"`, `"api/user"`, 1)
	writeAtomic(t, f.Config, bad)
	for _, want := range []string{f.Config + ":9,17", f.Config + ":13,13"} {
		waitFor(t, 3*time.Second, "the diagnostic "+want+" in the log", func() bool {
			return strings.Contains(f.Logs(), want)
		})
	}
	// Logged just after the diagnostics: waited for, not checked once.
	waitFor(t, 3*time.Second, "the log to say the reload failed", func() bool {
		return strings.Contains(f.Logs(), "reload failed; keeping the running configuration")
	})
	for i := 0; i < 5; i++ {
		if !answersWith(f.URL+"/api/user/1", "user-1") {
			t.Fatalf("the running route stopped answering after an invalid edit")
		}
	}
	select {
	case <-f.done:
		t.Fatalf("ferry exited after an invalid edit")
	default:
	}
}

func TestReloadAdminEndpoint(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	register(t, c, "user", startBackend(t, "user-1", nil))
	register(t, c, "order", startBackend(t, "order-1", nil))
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	listen, admin := hostPort(f.URL), hostPort(f.AdminURL)

	// Error: 422 with every diagnostic, positions included.
	bad := strings.Replace(reloadConfig(listen, admin, agent.HTTPAddr, "", "service \"user\" {\n  balance = \"fastest\"\n}\n"),
		`"/api/user"`, `"api/user"`, 1)
	writeAtomic(t, f.Config, bad)
	code, ans := postReload(t, f.AdminURL)
	if code != http.StatusUnprocessableEntity || ans.Status != "error" {
		t.Fatalf("invalid config: got %d %+v, want 422 status error", code, ans)
	}
	type pos struct {
		file      string
		line, col int
	}
	var got []pos
	for _, d := range ans.Diagnostics {
		if d.Summary == "" {
			t.Errorf("diagnostic without summary: %+v", d)
		}
		got = append(got, pos{d.File, d.Line, d.Column})
	}
	want := []pos{{f.Config, 9, 17}, {f.Config, 13, 13}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("diagnostics at %v, want %v", got, want)
	}
	if !answersWith(f.URL+"/api/user/1", "user-1") {
		t.Errorf("the running route stopped answering after a failed reload")
	}

	// Success: 200 {"status":"ok"} and the new route is served at once.
	writeAtomic(t, f.Config, reloadConfig(listen, admin, agent.HTTPAddr, "", ordersRoute))
	code, ans = postReload(t, f.AdminURL)
	if code != http.StatusOK || ans.Status != "ok" || len(ans.Diagnostics) != 0 {
		t.Fatalf("valid config: got %d %+v, want 200 status ok", code, ans)
	}
	if !answersWith(f.URL+"/api/order/1", "order-1") {
		t.Errorf("the route added by POST /v1/reload is not served right after it answered")
	}
	if code := statusOf(f.AdminURL + "/v1/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/reload: got %d, want 405", code)
	}
}

func TestReloadUnderLoadNoFailedRequests(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	register(t, c, "user", startBackend(t, "user-1", nil))
	register(t, c, "user", startBackend(t, "user-2", nil))
	register(t, c, "order", startBackend(t, "order-1", nil))
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	listen, admin := hostPort(f.URL), hostPort(f.AdminURL)
	waitForInstances(t, f, "/api/user/1", 2)

	// All keep the users route. B and C also route orders (its watcher
	// starts and stops on every switch); B tunes the user service (a new
	// transport); C changes the consul block (a new discovery Manager on
	// the switches to and from it). The cycle is A B A C.
	a := reloadConfig(listen, admin, agent.HTTPAddr, "  wait_time = \"30s\"\n", "")
	b := reloadConfig(listen, admin, agent.HTTPAddr, "  wait_time = \"30s\"\n", ordersRoute+`
service "user" {
  balance         = "least_request"
  connect_timeout = "3s"
}
`)
	cc := reloadConfig(listen, admin, agent.HTTPAddr, "  wait_time = \"20s\"\n", ordersRoute)
	configs := []string{b, a, cc, a}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}
	defer lc.CloseIdleConnections()
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var samples []string
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := lc.Get(f.URL + "/api/user/1")
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "user-") {
					failed.Add(1)
					mu.Lock()
					if len(samples) < 10 {
						if err != nil {
							samples = append(samples, err.Error())
						} else {
							samples = append(samples, fmt.Sprintf("%d %q", resp.StatusCode, body))
						}
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}

	reloads := 0
	tick := time.NewTicker(400 * time.Millisecond)
	for i := 0; i < 20; i++ {
		<-tick.C
		writeAtomic(t, f.Config, configs[i%len(configs)])
		if code, ans := postReload(t, f.AdminURL); code != http.StatusOK {
			t.Errorf("reload %d: got %d %+v", i, code, ans)
			continue
		}
		reloads++
	}
	tick.Stop()
	<-ctx.Done()
	wg.Wait()

	t.Logf("%d reloads under 8 request loops for 10s: %d requests, %d failed", reloads, ok.Load()+failed.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed during reloads; first ones: %q", failed.Load(), samples)
	}
	if reloads != 20 {
		t.Errorf("%d reloads succeeded, want 20", reloads)
	}
	if ok.Load() < 100 {
		t.Errorf("only %d requests succeeded in 10s", ok.Load())
	}
	logs := f.Logs()
	for _, want := range []string{"stopped watching service: service=order", "consul settings changed; reconnecting",
		"switched to the new Consul connection; stopping the old one's watchers"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log does not contain %q", want)
		}
	}
}

func TestReloadStopsWatcherOfRemovedService(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	register(t, c, "user", startBackend(t, "user-1", nil))
	register(t, c, "order", startBackend(t, "order-1", nil))
	f := startFerry(t, agent.HTTPAddr, basicConfig+ordersRoute)
	f.WaitReady()
	listen, admin := hostPort(f.URL), hostPort(f.AdminURL)
	waitFor(t, 5*time.Second, "orders route", func() bool { return answersWith(f.URL+"/api/order/1", "order-1") })
	if strings.Contains(f.Logs(), "stopped watching service") {
		t.Fatalf("a watcher stopped before the reload")
	}

	writeAtomic(t, f.Config, reloadConfig(listen, admin, agent.HTTPAddr, "", ""))
	waitFor(t, 3*time.Second, "the order watcher to stop", func() bool {
		return strings.Contains(f.Logs(), "stopped watching service: service=order")
	})
	if strings.Contains(f.Logs(), "stopped watching service: service=user") {
		t.Errorf("the watcher of a service still routed was stopped")
	}
	// The watcher stops just before the new table is swapped in.
	waitFor(t, 3*time.Second, "the removed route to answer 404", func() bool {
		return statusOf(f.URL+"/api/order/1") == http.StatusNotFound
	})
	if !answersWith(f.URL+"/api/user/1", "user-1") {
		t.Errorf("the kept route stopped answering")
	}
}

func TestReloadMovesListener(t *testing.T) {
	agent := consultest.Start(t)
	entered := make(chan struct{}, 1)
	b := startBackend(t, "user-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/user/slow" {
			entered <- struct{}{}
			time.Sleep(1500 * time.Millisecond)
		}
		io.WriteString(w, "done")
	})
	register(t, agent.Client(), "user", b)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitFor(t, 5*time.Second, "route", func() bool { return answersWith(f.URL+"/api/user/1", "done") })

	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	slowClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer slowClient.CloseIdleConnections()
	go func() {
		resp, err := slowClient.Get(f.URL + "/api/user/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(body), err}
	}()
	<-entered

	ports := consultest.FreePorts(t, 2)
	newListen := "127.0.0.1:" + strconv.Itoa(ports[0])
	newAdmin := "127.0.0.1:" + strconv.Itoa(ports[1])
	writeAtomic(t, f.Config, reloadConfig(newListen, newAdmin, agent.HTTPAddr, "", ""))
	code, ans := postReload(t, f.AdminURL) // answered by the old admin listener while it drains
	if code != http.StatusOK {
		t.Fatalf("reload: got %d %+v", code, ans)
	}
	if !answersWith("http://"+newListen+"/api/user/1", "done") {
		t.Fatalf("the new listener does not answer right after the reload")
	}
	if code := statusOf("http://" + newAdmin + "/healthz"); code != 200 {
		t.Errorf("the new admin address: /healthz got %d", code)
	}

	r := <-res
	if r.err != nil || r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request on the old listener: got %d %q %v, want 200 \"done\"", r.code, r.body, r.err)
	}
	waitFor(t, 3*time.Second, "the old listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", hostPort(f.URL), time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
	waitFor(t, 3*time.Second, "the old admin listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", hostPort(f.AdminURL), time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
	if !answersWith("http://"+newListen+"/api/user/2", "done") {
		t.Errorf("the new listener stopped answering")
	}
}

func TestReloadConfigMapSymlinkSwap(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	register(t, c, "user", startBackend(t, "user-1", nil))
	register(t, c, "order", startBackend(t, "order-1", nil))

	// The layout kubelet gives a mounted ConfigMap: the visible file is a
	// symlink through "..data", itself a symlink to a timestamped directory;
	// an update writes a new directory and renames a new "..data" over the old.
	dir := t.TempDir()
	ports := consultest.FreePorts(t, 2)
	listen := "127.0.0.1:" + strconv.Itoa(ports[0])
	admin := "127.0.0.1:" + strconv.Itoa(ports[1])
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "ferry.hcl"), content)
	}
	version("..2026_01_01_00_00_00.1", reloadConfig(listen, admin, agent.HTTPAddr, "", ""))
	must(t, os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/ferry.hcl", filepath.Join(dir, "ferry.hcl")))

	f := runFerry(t, dir, listen, admin)
	f.WaitReady()
	waitFor(t, 5*time.Second, "users route", func() bool { return answersWith(f.URL+"/api/user/1", "user-1") })
	if code := statusOf(f.URL + "/api/order/1"); code != http.StatusNotFound {
		t.Fatalf("before the swap: /api/order/1 got %d, want 404", code)
	}

	version("..2026_01_01_00_01_00.2", reloadConfig(listen, admin, agent.HTTPAddr, "", ordersRoute))
	must(t, os.Symlink("..2026_01_01_00_01_00.2", filepath.Join(dir, "..data_tmp")))
	start := time.Now()
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(filepath.Join(dir, "..2026_01_01_00_00_00.1")))
	waitFor(t, 2*time.Second, "the route added by the symlink swap", func() bool {
		return answersWith(f.URL+"/api/order/1", "order-1")
	})
	t.Logf("symlink swap picked up after %v", time.Since(start).Round(time.Millisecond))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

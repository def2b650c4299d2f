package e2e

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// chromiumBin finds a headless-capable Chromium; the test fails (never
// skips) without one.
func chromiumBin(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the status page test needs Chromium: install it (Debian: apt-get install -y chromium; .ci/run does) or set CHROMIUM_BIN")
	return ""
}

// runChromium runs a headless Chromium with args on url and returns its
// stdout and stderr.
func runChromium(t *testing.T, bin, url string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--no-first-run", "--no-default-browser-check",
		"--user-data-dir=" + t.TempDir(),
		"--enable-logging=stderr", "--v=0",
	}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// consoleProblem matches what Chromium logs for a page's uncaught errors,
// console errors and failed loads.
var consoleProblem = regexp.MustCompile(`(?i)Uncaught|CONSOLE\(\d+\)\].*(error|failed)|Refused to|net::ERR_`)

// TestStatusPageRenders loads the admin status page in a real headless
// browser against a running ferry, and checks the rendered DOM shows every
// route, service and instance, every listener with its certificates' names
// and expiry (one expiring within 14 days flagged), with no script error,
// and that a screenshot can be taken.
func TestStatusPageRenders(t *testing.T) {
	bin := chromiumBin(t)
	agent := consultest.Start(t)
	c := agent.Client()
	u1, u2 := startBackend(t, "user-1", nil), startBackend(t, "user-2", nil)
	o1 := startBackend(t, "order-1", nil)
	register(t, c, "user", u1)
	register(t, c, "user", u2)
	register(t, c, "order", o1)
	ca := testcerts.NewCA(t, "status")
	soon := ca.LeafUntil(time.Now().Add(5*24*time.Hour+time.Hour), "shop", "shop.example", "www.shop.example")
	later := ca.LeafUntil(time.Now().Add(60*24*time.Hour+time.Hour), "apps", "*.apps.example")
	ports := consultest.FreePorts(t, 2)
	f := startFerry(t, agent.HTTPAddr, basicConfig+`
listener "public" {
  address = "127.0.0.1:`+strconv.Itoa(ports[0])+`"
  http2   = true
  tls {
    certificate {
      cert_file = "`+later.CertFile+`"
      key_file  = "`+later.KeyFile+`"
    }
    certificate {
      cert_file = "`+soon.CertFile+`"
      key_file  = "`+soon.KeyFile+`"
    }
  }
}
listener "redirect" {
  address        = "127.0.0.1:`+strconv.Itoa(ports[1])+`"
  redirect_https = "https://{host}"
}
route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}
route "nothing" {
  path_prefix = "/nothing"
  service     = "absent"
}
`)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 2)
	waitFor(t, 10*time.Second, "order instance", func() bool { s, _ := get(t, f.URL+"/api/order/x"); return s == 200 })

	// Served as one page that may load nothing from elsewhere.
	resp, err := client.Get(f.AdminURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("GET /: %d, Content-Type %q, Content-Security-Policy %q; want the page, loading nothing from elsewhere",
			resp.StatusCode, resp.Header.Get("Content-Type"), csp)
	}

	dom, logs := runChromium(t, bin, f.AdminURL+"/", "--virtual-time-budget=5000", "--dump-dom")
	if !strings.Contains(dom, "ferry status") {
		t.Fatalf("the DOM is not the status page:\n%s", dom)
	}
	for _, want := range []string{
		u1.Addr, u2.Addr, o1.Addr, // instances, as address:port
		`data-service="user"`, `data-service="order"`, `data-service="absent"`,
		`data-instance="user-1"`, `data-instance="user-2"`, `data-instance="order-1"`,
		`data-route="users"`, `data-route="orders"`, `data-route="nothing"`,
		"/api/user", "/api/order",
		"2/2 healthy", "1/1 healthy", "0/0 healthy",
		"no instance registered in Consul",
		// listeners: the listen shorthand and both blocks; the TLS one's
		// certificates, one row each, the one expiring in 5 days flagged.
		`data-listener="listen"`, `data-listener="public"`, `data-listener="redirect"`,
		`class="listener cert ok" data-listener="public" data-cert="` + later.CertFile + `"`,
		`class="listener cert soon" data-listener="public" data-cert="` + soon.CertFile + `"`,
		"shop.example, www.shop.example", "*.apps.example", "in 5 d", "in 60 d",
		soon.Cert.NotAfter.UTC().Format("2006-01-02"), "TLS 1.2+", "h2 · http/1.1", "308 → https://{host}",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if n := strings.Count(dom, `class="instance healthy"`); n != 3 {
		t.Errorf("got %d healthy instance rows, want 3", n)
	}
	if strings.Contains(dom, "updated <span id=\"updated\">never") {
		t.Errorf("the page never refreshed from the JSON endpoints")
	}
	errs := regexp.MustCompile(`<div id="errors">([^<]*)</div>`).FindStringSubmatch(dom)
	if errs == nil {
		t.Errorf("no #errors element in the DOM")
	} else if errs[1] != "" {
		t.Errorf("the page reported errors: %s", errs[1])
	}
	for _, line := range strings.Split(logs, "\n") {
		if consoleProblem.MatchString(line) {
			t.Errorf("browser console: %s", line)
		}
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	runChromium(t, bin, f.AdminURL+"/", "--virtual-time-budget=5000", "--window-size=1280,800", "--screenshot="+shot, "--hide-scrollbars")
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot: %d bytes, not a PNG image", len(png))
	}
	if dir := os.Getenv("FERRY_SCREENSHOT_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, "status.png"), png, 0o644)
	}
}

func checkPageClean(t *testing.T, dom, logs string) {
	t.Helper()
	if strings.Contains(dom, "updated <span id=\"updated\">never") {
		t.Errorf("the page never refreshed from the JSON endpoints")
	}
	errs := regexp.MustCompile(`<div id="errors">([^<]*)</div>`).FindStringSubmatch(dom)
	if errs == nil {
		t.Errorf("no #errors element in the DOM")
	} else if errs[1] != "" {
		t.Errorf("the page reported errors: %s", errs[1])
	}
	for _, line := range strings.Split(logs, "\n") {
		if consoleProblem.MatchString(line) {
			t.Errorf("browser console: %s", line)
		}
	}
}

// screenshot loads url in headless Chromium with the window size given and
// returns a screenshot, the rendered DOM and the browser's log.
func screenshot(t *testing.T, bin, url, size string) (png []byte, dom, logs string) {
	t.Helper()
	shot := filepath.Join(t.TempDir(), "shot.png")
	dom, logs = runChromium(t, bin, url, "--virtual-time-budget=5000", size, "--screenshot="+shot, "--hide-scrollbars", "--dump-dom")
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot: %d bytes, not a PNG image", len(png))
	}
	return png, dom, logs
}

// TestStatusPageConsulStates renders the page over canned API answers with
// every Consul status discovery reports (passing, warning, critical,
// maintenance) and the routable flag: instances Consul keeps out of routing
// are listed with their status and do not count as healthy. The answers
// are fixed so that the page's rule is checked whatever discovery returns
// today; the other page tests run against a real ferry.
func TestStatusPageConsulStates(t *testing.T) {
	bin := chromiumBin(t)
	page, err := os.ReadFile("../cmd/ferry/status.html")
	if err != nil {
		t.Fatal(err)
	}
	inst := func(id, status string, routable bool) string {
		return `{"id":"` + id + `","node":"n1","address":"10.0.0.1","port":9000,"weight":1,"tags":[],"consul_status":"` + status +
			`","routable":` + strconv.FormatBool(routable) + `,"active_check":"none","ejected":false,"ejected_until":null,"ejections":0,"healthy":true,"in_flight":0}`
	}
	answers := map[string]string{
		"/v1/routes": `{"routes":[{"name":"users","host":"","path_prefix":"/api/user","service":"user","strip_prefix":false}]}`,
		"/v1/upstreams": `{"services":[{"name":"user","balance":"round_robin","known":true,"stale":false,"index":9,"datacenter":"dc1","failed_over":false,"panic":true,"from_snapshot":false,"health_policy":"warning",` +
			`"last_contact":null,"last_contact_age_seconds":1,"error":"","in_flight":0,"active_checks":false,"healthy":2,"instances":[` +
			inst("u-pass", "passing", true) + "," + inst("u-warn", "warning", true) + "," +
			inst("u-crit", "critical", false) + "," + inst("u-maint", "maintenance", false) + `]}]}`,
		"/v1/stats":     `{"step_seconds":5,"points":180,"routes":[],"instances":[]}`,
		"/v1/events":    `{"events":[]}`,
		"/v1/listeners": `{"listeners":[]}`,
		"/readyz":       "ready\n",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(page)
			return
		}
		a, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(a))
	}))
	defer srv.Close()
	_, dom, logs := screenshot(t, bin, srv.URL+"/", "--window-size=600,900")
	for _, want := range []string{
		"2/4 healthy", "dc dc1",
		`class="instance healthy" data-instance="u-pass"`, `class="instance healthy" data-instance="u-warn"`, "Consul: warning (routed)",
		`class="instance critical" data-instance="u-crit"`, "Consul: critical (not routed)",
		`class="instance maintenance" data-instance="u-maint"`, "Consul: maintenance (not routed)",
		`class="service degraded"`, "panic mode", "routes Consul warning",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if n := strings.Count(dom, `data-action="drain"`); n != 2 {
		t.Errorf("got %d drain buttons, want 2 (routable instances only)", n)
	}
	checkPageClean(t, dom, logs)
}

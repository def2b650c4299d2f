package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// post sends an empty POST and returns status and body.
func post(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDrainInstance drains an instance through the admin API: requests in
// flight on it finish, new ones go elsewhere, it shows as drained, and
// undrain puts it back. Only POST, only on the admin listener.
func TestDrainInstance(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	slow := startBackend(t, "user-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/user/slow" {
			<-release
		}
		io.WriteString(w, "user-1")
	})
	other := startBackend(t, "user-2", nil)
	register(t, c, "user", slow)
	register(t, c, "user", other)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 2)

	// A request in flight on user-1 (round robin: try until one lands there).
	inFlight := make(chan string, 1)
	go func() {
		for {
			resp, err := client.Get(f.URL + "/api/user/slow")
			if err != nil {
				inFlight <- "error: " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "user-1" {
				inFlight <- string(b)
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, "a request in flight on user-1", func() bool {
		a := upstreams(t, f)
		for _, s := range a.Services {
			for _, i := range s.Instances {
				if i.ID == "user-1" && i.InFlight == 1 {
					return true
				}
			}
		}
		return false
	})

	drain := f.AdminURL + "/v1/upstreams/user/user-1/drain"
	if s, _ := get(t, drain); s != http.StatusMethodNotAllowed {
		t.Errorf("GET drain: got %d, want 405", s)
	}
	if s, _ := post(t, f.URL+"/v1/upstreams/user/user-1/drain"); s != http.StatusNotFound {
		t.Errorf("drain on the data plane: got %d, want 404 (the admin API is not there)", s)
	}
	if s, _ := post(t, drain, "Origin", "http://evil.example"); s != http.StatusForbidden {
		t.Errorf("cross-origin drain: got %d, want 403", s)
	}
	if s, body := post(t, f.AdminURL+"/v1/upstreams/user/nobody/drain"); s != http.StatusNotFound {
		t.Errorf("drain of an unknown instance: got %d %q, want 404", s, body)
	}
	s, body := post(t, drain)
	if s != 200 || !strings.Contains(body, `"drained": true`) {
		t.Fatalf("drain: got %d %s", s, body)
	}
	for i := 0; i < 10; i++ {
		if s, b := get(t, f.URL+"/api/user/x"); s != 200 || b != "user-2" {
			t.Fatalf("request %d after the drain: got %d %q, want 200 from user-2", i, s, b)
		}
	}
	once.Do(func() { close(release) })
	select {
	case got := <-inFlight:
		if got != "user-1" {
			t.Fatalf("the request in flight on the drained instance: got %q, want it finished by user-1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request in flight on the drained instance did not finish")
	}
	var a struct {
		Services []struct {
			Instances []struct {
				ID           string  `json:"id"`
				Drained      bool    `json:"drained"`
				DrainedSince *string `json:"drained_since"`
				Healthy      bool    `json:"healthy"`
			} `json:"instances"`
		} `json:"services"`
	}
	if _, body := get(t, f.AdminURL+"/v1/upstreams"); json.Unmarshal([]byte(body), &a) != nil {
		t.Fatalf("/v1/upstreams: %s", body)
	}
	for _, s := range a.Services {
		for _, i := range s.Instances {
			if i.ID == "user-1" && (!i.Drained || i.DrainedSince == nil || i.Healthy) {
				t.Errorf("user-1 in /v1/upstreams: drained %v since %v healthy %v; want drained, a time, not healthy", i.Drained, i.DrainedSince, i.Healthy)
			}
		}
	}
	if v := metricNow(t, f, "ferry_upstream_drained_instances", "service=user"); v != 1 {
		t.Errorf("ferry_upstream_drained_instances: got %v, want 1", v)
	}
	// A reload keeps the drain.
	if s, body := post(t, f.AdminURL+"/v1/reload"); s != 200 {
		t.Fatalf("reload: %d %s", s, body)
	}
	if s, b := get(t, f.URL+"/api/user/x"); s != 200 || b != "user-2" {
		t.Errorf("after a reload: got %d %q, want user-2 (still drained)", s, b)
	}

	if s, body := post(t, f.AdminURL+"/v1/upstreams/user/user-1/undrain"); s != 200 || !strings.Contains(body, `"drained": false`) {
		t.Fatalf("undrain: got %d %s", s, body)
	}
	waitForInstances(t, f, "/api/user/x", 2)
	ev := events(t, f)
	for _, want := range []string{"drained", "undrained", "reloaded"} {
		if !strings.Contains(ev, `"event": "`+want+`"`) {
			t.Errorf("/v1/events lacks %q:\n%s", want, ev)
		}
	}
	for _, want := range []string{"instance drained: no new requests until undrained", "instance undrained: back in rotation"} {
		if !strings.Contains(f.Logs(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func events(t *testing.T, f *ferry) string {
	t.Helper()
	s, b := get(t, f.AdminURL+"/v1/events")
	if s != 200 {
		t.Fatalf("/v1/events: %d", s)
	}
	return b
}

// statsAnswer is what the test reads of GET /v1/stats.
type statsAnswer struct {
	Routes []struct {
		Name    string              `json:"name"`
		Rate    float64             `json:"rate"`
		Rate4xx float64             `json:"rate_4xx"`
		Rate5xx float64             `json:"rate_5xx"`
		P50     float64             `json:"p50_ms"`
		P99     float64             `json:"p99_ms"`
		Bytes   float64             `json:"bytes_per_second"`
		History struct{ T []int64 } `json:"history"`
	} `json:"routes"`
	Instances []struct {
		Service string  `json:"service"`
		Name    string  `json:"name"`
		Node    string  `json:"node"`
		Rate    float64 `json:"rate"`
		Rate4xx float64 `json:"rate_4xx"`
		Rate5xx float64 `json:"rate_5xx"`
		P50     float64 `json:"p50_ms"`
		P99     float64 `json:"p99_ms"`
		Bytes   float64 `json:"bytes_per_second"`
	} `json:"instances"`
}

func stats(t *testing.T, f *ferry) statsAnswer {
	t.Helper()
	s, b := get(t, f.AdminURL+"/v1/stats")
	if s != 200 {
		t.Fatalf("/v1/stats: %d", s)
	}
	var a statsAnswer
	if err := json.Unmarshal([]byte(b), &a); err != nil {
		t.Fatalf("/v1/stats: %v\n%s", err, b)
	}
	return a
}

// TestStatusPageUnderTraffic runs traffic through ferry to a healthy
// service (some of its answers 404s), a degraded one (one instance refusing
// connections and ejected, one drained, one whose Consul check turned
// critical, one healthy) and an empty one, then loads the status page in
// headless Chromium: the whole page and each service alone at 600 px wide.
// The rendered DOM must show live figures per route and per instance
// (rates, 4xx and 5xx apart, p50 and p99, bytes), charts, every registered
// instance with its Consul status, states with their reasons and times, and
// the events; routing must not reach the critical instance. With
// FERRY_SCREENSHOT_DIR set, the screenshots are written there
// (docs/status-page.png comes from this test).
func TestStatusPageUnderTraffic(t *testing.T) {
	bin := chromiumBin(t)
	agent := consultest.Start(t)
	c := agent.Client()
	userBackend := func(name string) *backend {
		return startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/missing") {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, name)
		})
	}
	u1, u2 := userBackend("user-1"), userBackend("user-2")
	o1, o2, o3 := startBackend(t, "order-1", nil), startBackend(t, "order-2", nil), startBackend(t, "order-3", nil)
	var o4hits atomic.Int64
	o4 := startBackend(t, "order-4", func(w http.ResponseWriter, r *http.Request) {
		o4hits.Add(1)
		io.WriteString(w, "order-4")
	})
	register(t, c, "user", u1)
	register(t, c, "user", u2)
	for _, o := range []*backend{o1, o2, o3, o4} {
		register(t, c, "order", o)
	}
	f := startFerry(t, agent.HTTPAddr, basicConfig+`
route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}
route "payments" {
  path_prefix = "/api/pay"
  service     = "payment"
}
`)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 2)
	waitForInstances(t, f, "/api/order/x", 4)

	if s, body := post(t, f.AdminURL+"/v1/upstreams/order/order-3/drain"); s != 200 {
		t.Fatalf("drain order-3: %d %s", s, body)
	}
	o2.kill() // refused: ejected at its first failure, retried on order-1
	// order-4's Consul check turns critical: out of routing, still listed.
	if err := c.Agent().UpdateTTL("service:order-4", "disk full", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "order-4 critical and not routable in /v1/upstreams", func() bool {
		return slices.Contains(statuses(nativeUpstreams(t, f), "order"), "order-4:critical:false")
	})
	o4before := o4hits.Load()
	var ups struct {
		Services []struct {
			Name      string `json:"name"`
			Instances []struct {
				ID             string  `json:"id"`
				NotRoutedSince *string `json:"not_routed_since"`
			} `json:"instances"`
		} `json:"services"`
	}
	if _, body := get(t, f.AdminURL+"/v1/upstreams"); json.Unmarshal([]byte(body), &ups) != nil {
		t.Fatalf("/v1/upstreams: %s", body)
	}
	for _, s := range ups.Services {
		for _, i := range s.Instances {
			if s.Name == "order" && (i.NotRoutedSince != nil) != (i.ID == "order-4") {
				t.Errorf("order %s: not_routed_since %v; want a time for order-4 only", i.ID, i.NotRoutedSince)
			}
		}
	}

	// Traffic for two history steps (5 s each): a few hundred requests.
	// The rate steps up and down every 20 s, so that a longer run
	// (FERRY_SCREENSHOT_TRAFFIC=3m, for the README's screenshot) draws
	// charts with a shape.
	began := time.Now()
	defer requestLoops(f, []string{"/api/user/a", "/api/user/missing", "/api/order/b", "/api/pay/c"}, func() time.Duration {
		return time.Duration(1+int(time.Since(began)/(20*time.Second))%3) * 20 * time.Millisecond
	})()
	if d, err := time.ParseDuration(os.Getenv("FERRY_SCREENSHOT_TRAFFIC")); err == nil && d > 0 && d <= 15*time.Minute {
		time.Sleep(d) // a longer history for the screenshot; nothing else runs meanwhile
	}
	waitFor(t, 30*time.Second, "two traffic steps in /v1/stats", func() bool {
		for _, r := range stats(t, f).Routes {
			if r.Name == "users" && len(r.History.T) >= 2 && r.Rate > 0 {
				return true
			}
		}
		return false
	})
	st := stats(t, f)
	for _, r := range st.Routes {
		switch r.Name {
		case "users", "orders":
			if r.Rate < 5 || r.Bytes <= 0 || r.P99 <= 0 || r.P50 <= 0 {
				t.Errorf("route %s: rate %v/s, %v B/s, p50 %v ms, p99 %v ms; want traffic figures", r.Name, r.Rate, r.Bytes, r.P50, r.P99)
			}
			if r.Name == "users" && (r.Rate4xx <= 0 || r.Rate5xx != 0) {
				t.Errorf("route users: 4xx %v/s, 5xx %v/s; want the 404s as 4xx only", r.Rate4xx, r.Rate5xx)
			}
		case "payments":
			if r.Rate5xx < 5 {
				t.Errorf("route payments (no instance: 503s): 5xx rate %v/s, want the whole rate", r.Rate5xx)
			}
		}
	}

	// One Chromium run per view: its DOM is checked and its screenshot kept.
	keep := func(name string, png []byte) {
		if dir := os.Getenv("FERRY_SCREENSHOT_DIR"); dir != "" {
			os.WriteFile(filepath.Join(dir, name), png, 0o644)
		}
	}
	for _, i := range st.Instances {
		if i.Service == "user" && (i.Rate4xx <= 0 || i.P50 <= 0 || i.P99 < i.P50 || i.Bytes <= 0) {
			t.Errorf("instance %s: 4xx %v/s, p50 %v ms, p99 %v ms, %v B/s; want its own figures", i.Name, i.Rate4xx, i.P50, i.P99, i.Bytes)
		}
	}
	png, dom, logs := screenshot(t, bin, f.AdminURL+"/", "--window-size=1100,1200")
	keep("status-page.png", png)
	for _, want := range []string{
		`data-route="users"`, `data-route="orders"`, `data-route="payments"`,
		"2/2 healthy", "1/4 healthy", "0/0 healthy",
		`class="instance ejected" data-instance="order-2"`, "connection refused",
		`class="instance drained" data-instance="order-3"`, "by an operator",
		`class="instance critical" data-instance="order-4"`, "Consul: critical (not routed)",
		`data-event="drained"`, `data-event="ejected"`, `data-event="left"`, "Consul: critical",
		`<svg class="spark"`, `<svg class="mini"`, "p99", "/s",
		`<span class="lbl">4xx </span><span class="k-4xx">`, `<span class="lbl">p50 </span>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered DOM lacks %q", want)
		}
	}
	if !regexp.MustCompile(`Consul: critical \(not routed\) (just now|\d+ s ago|\d+ min ago)`).MatchString(dom) {
		t.Errorf("order-4's state does not say since when it is out of routing")
	}
	if n := strings.Count(dom, `class="instance healthy"`); n != 3 {
		t.Errorf("got %d healthy instance rows, want 3 (user-1, user-2, order-1)", n)
	}
	checkPageClean(t, dom, logs)

	// Each service alone, at 600 px: healthy, degraded, empty.
	for _, v := range []struct {
		name, hash string
		want       []string
	}{
		{"status-healthy.png", "#service=user", []string{"2/2 healthy", `data-route="users"`}},
		{"status-degraded.png", "#service=order", []string{"1/4 healthy", `data-route="orders"`, `class="instance ejected"`, `class="instance drained"`, `class="instance critical"`}},
		{"status-empty.png", "#service=payment", []string{"0/0 healthy", "no instance registered in Consul", `data-route="payments"`}},
	} {
		png, dom, logs := screenshot(t, bin, f.AdminURL+"/"+v.hash, "--window-size=600,900")
		keep(v.name, png)
		for _, w := range v.want {
			if !strings.Contains(dom, w) {
				t.Errorf("%s: rendered DOM lacks %q", v.hash, w)
			}
		}
		if n := strings.Count(dom, `class="service`); n != 1 {
			t.Errorf("%s: %d service boxes, want 1", v.hash, n)
		}
		checkPageClean(t, dom, logs)
	}
	// One log line each, with key/values and the reason.
	for _, re := range []string{
		`\[INFO\]  ferry\.discovery: instance left: service=order instance_id=order-4 address=127\.0\.0\.1:\d+ reason="Consul: critical"\n`,
		`\[WARN\]  ferry\.proxy: instance ejected: service=order instance_id=order-2 address=127\.0\.0\.1:\d+ for=\S+ refused=true\n`,
	} {
		if !regexp.MustCompile(re).MatchString(f.Logs()) {
			t.Errorf("log lacks a line matching %s", re)
		}
	}
	if n := o4hits.Load(); n != o4before {
		t.Errorf("order-4 (Consul: critical) got %d requests after its check failed, want none", n-o4before)
	}
}

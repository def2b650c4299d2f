package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	metrics "github.com/armon/go-metrics"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// metricsFixture is a Handler over one real backend, with appMetrics
// reading it.
type metricsFixture struct {
	am      *appMetrics
	handler *proxy.Handler
	sets    map[string]*discovery.InstanceSet
	reloads [2]uint64
}

func newMetricsFixture(t *testing.T) *metricsFixture {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/user/fail":
			w.WriteHeader(http.StatusBadGateway)
		case "/api/user/missing":
			w.WriteHeader(http.StatusNotFound)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(be.Close)
	am, err := newAppMetrics()
	if err != nil {
		t.Fatal(err)
	}
	addr := be.Listener.Addr().String()
	host, port, _ := strings.Cut(addr, ":")
	p := 0
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	set := &discovery.InstanceSet{Service: "user", Known: true, Index: 7, LastContact: time.Now().Add(-3 * time.Second),
		Instances: []discovery.Instance{{ID: "user-1", Node: "n1", Address: host, Port: p, Weight: 1}}}
	f := &metricsFixture{am: am, sets: map[string]*discovery.InstanceSet{"user": set}}
	b := route.NewBuilder(health.NewRegistry(), nil)
	t.Cleanup(b.Close)
	f.handler = proxy.NewHandler(proxy.Options{})
	f.handler.Store(b.Build([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil, f.sets))
	am.src = metricSources{
		table:   f.handler.Table,
		handler: f.handler,
		sets:    func() map[string]*discovery.InstanceSet { return f.sets },
		reloads: func() (uint64, uint64) { return f.reloads[0], f.reloads[1] },
		now:     time.Now,
	}
	return f
}

func (f *metricsFixture) request(t *testing.T, path string) {
	t.Helper()
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://ferry.local"+path, nil))
}

// scrape returns /metrics as "series value" lines.
func (f *metricsFixture) scrape(t *testing.T) string {
	t.Helper()
	w := httptest.NewRecorder()
	f.am.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body.String())
	}
	return w.Body.String()
}

func wantLine(t *testing.T, body, line string) {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q in /metrics:\n%s", line, body)
}

func TestMetricsPublishDeltas(t *testing.T) {
	f := newMetricsFixture(t)
	for range 3 {
		f.request(t, "/api/user/1")
	}
	f.request(t, "/api/user/fail")
	f.request(t, "/elsewhere")
	f.am.discoveryError("user", nil)
	f.am.discoveryUpdate("user")
	f.am.checkFailed("user")
	f.reloads = [2]uint64{2, 1}

	body := f.scrape(t)
	wantLine(t, body, `ferry_proxy_requests_total{code_class="2xx",route="users",service="user"} 3`)
	wantLine(t, body, `ferry_proxy_requests_total{code_class="5xx",route="users",service="user"} 1`)
	wantLine(t, body, `ferry_proxy_requests_total{code_class="4xx",route="users",service="user"} 0`)
	wantLine(t, body, `ferry_proxy_unrouted_requests_total{reason="no_route"} 1`)
	wantLine(t, body, `ferry_proxy_upstream_attempts_total{service="user"} 4`)
	wantLine(t, body, `ferry_proxy_retries_total{service="user"} 0`)
	wantLine(t, body, `ferry_proxy_retries_denied_total{service="user"} 0`)
	wantLine(t, body, `ferry_proxy_request_duration_seconds_count{route="users",service="user"} 4`)
	wantLine(t, body, `ferry_proxy_request_duration_seconds_bucket{route="users",service="user",le="+Inf"} 4`)
	wantLine(t, body, `ferry_proxy_upstream_attempt_duration_seconds_count{service="user"} 4`)
	wantLine(t, body, `ferry_proxy_response_bytes_total{route="users",service="user"} 8`)
	wantLine(t, body, `ferry_upstream_drained_instances{service="user"} 0`)
	wantLine(t, body, `ferry_upstream_instances{service="user"} 1`)
	wantLine(t, body, `ferry_upstream_healthy_instances{service="user"} 1`)
	wantLine(t, body, `ferry_upstream_ejected_instances{service="user"} 0`)
	wantLine(t, body, `ferry_discovery_errors_total{service="user"} 1`)
	wantLine(t, body, `ferry_discovery_updates_total{service="user"} 1`)
	wantLine(t, body, `ferry_health_check_failures_total{service="user"} 1`)
	wantLine(t, body, `ferry_discovery_stale{service="user"} 0`)
	wantLine(t, body, `ferry_config_reloads_total 2`)
	wantLine(t, body, `ferry_config_reload_failures_total 1`)
	for _, want := range []string{
		"# HELP ferry_proxy_requests_total Requests answered on a route",
		"# TYPE ferry_proxy_request_duration_seconds histogram",
		"# TYPE ferry_proxy_upstream_attempt_duration_seconds histogram",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in /metrics:\n%s", want, body)
		}
	}
	// Every documented bucket bound is exposed, in seconds.
	for _, le := range []string{"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60"} {
		if !strings.Contains(body, `ferry_proxy_request_duration_seconds_bucket{route="users",service="user",le="`+le+`"}`) {
			t.Errorf("no bucket le=%q", le)
		}
	}

	// Publishing again (the ticker) and scraping again adds only what
	// happened since.
	f.am.publish()
	f.request(t, "/api/user/2")
	f.reloads = [2]uint64{3, 1}
	body = f.scrape(t)
	wantLine(t, body, `ferry_proxy_requests_total{code_class="2xx",route="users",service="user"} 4`)
	wantLine(t, body, `ferry_proxy_upstream_attempts_total{service="user"} 5`)
	wantLine(t, body, `ferry_proxy_request_duration_seconds_count{route="users",service="user"} 5`)
	wantLine(t, body, `ferry_discovery_errors_total{service="user"} 1`)
	wantLine(t, body, `ferry_config_reloads_total 3`)
}

// TestMetricsConfiguredExplicitly checks the go-metrics settings the style
// guide asks for: no runtime collector (its goroutine cannot be stopped), no
// hostname anywhere, not the global instance.
func TestMetricsConfiguredExplicitly(t *testing.T) {
	am, err := newAppMetrics()
	if err != nil {
		t.Fatal(err)
	}
	c := am.m.Config
	if c.EnableRuntimeMetrics || c.EnableHostname || c.EnableHostnameLabel || c.HostName != "" || c.ServiceName != "" || c.EnableTypePrefix {
		t.Errorf("go-metrics config: %+v", c)
	}
	if am.m == metrics.Default() {
		t.Errorf("appMetrics uses the global go-metrics instance")
	}
	// Two instances (tests, or a future in-process restart) do not collide:
	// each has its own registry.
	if _, err := newAppMetrics(); err != nil {
		t.Errorf("a second appMetrics: %v", err)
	}
}

// TestREADMEDocumentsEveryMetric keeps the README's Metrics section in step
// with the code.
func TestREADMEDocumentsEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, d := range allMetrics {
		if !strings.Contains(readme, "`"+d.name()+"`") {
			t.Errorf("README does not document %s", d.name())
		}
	}
}

// BenchmarkGoMetricsDirect is what recording a request would cost through
// go-metrics' labelled calls and the Prometheus sink, for comparison with
// proxy's BenchmarkRecord (the design in metrics.go).
func BenchmarkGoMetricsDirect(b *testing.B) {
	am, err := newAppMetrics()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			labels := []metrics.Label{{Name: "route", Value: "users"}, {Name: "service", Value: "user"}, {Name: "code_class", Value: "2xx"}}
			am.m.IncrCounterWithLabels(mRequests.key, 1, labels)
			am.m.AddSampleWithLabels(mDuration.key, 0.001, labels[:2])
		}
	})
}

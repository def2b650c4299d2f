package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// series is one sample of a /metrics scrape.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads admin /metrics and parses the Prometheus text format (the
// subset ferry's exporter writes: no escaped quotes in label values).
func scrape(t *testing.T, adminURL string) []series {
	t.Helper()
	status, body := get(t, adminURL+"/metrics")
	if status != 200 {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	var out []series
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			t.Fatalf("bad /metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("bad value in /metrics line %q: %v", line, err)
		}
		s := series{labels: map[string]string{}, value: v}
		head := line[:sp]
		if i := strings.IndexByte(head, '{'); i >= 0 {
			s.name = head[:i]
			for _, kv := range strings.Split(strings.TrimSuffix(head[i+1:], "}"), ",") {
				if kv == "" {
					continue
				}
				k, val, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(val, `"`)
			}
		} else {
			s.name = head
		}
		out = append(out, s)
	}
	return out
}

// value returns the sample of name whose labels include want ("k=v"
// pairs), and whether there is one.
func value(ss []series, name string, want ...string) (float64, bool) {
next:
	for _, s := range ss {
		if s.name != name {
			continue
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

// metricNow scrapes and returns one value (0 when absent).
func metricNow(t *testing.T, f *ferry, name string, labels ...string) float64 {
	t.Helper()
	v, _ := value(scrape(t, f.AdminURL), name, labels...)
	return v
}

const observabilityConfig = `
listen = "%LISTEN%"
admin  = "%ADMIN%"
shutdown_timeout = "5s"
consul {
  address = "%CONSUL%"
}
service "flaky" {
  retries = 0
  outlier {
    consecutive_failures = 2
    base_ejection_time   = "1m"
  }
}
service "probed" {
  health_check {
    path                = "/health"
    interval            = "200ms"
    timeout             = "1s"
    healthy_threshold   = 1
    unhealthy_threshold = 1
  }
}
route "users" {
  path_prefix = "/api/user"
  service     = "user"
}
route "flaky" {
  path_prefix = "/flaky"
  service     = "flaky"
}
route "probed" {
  path_prefix = "/probed"
  service     = "probed"
}
`

// TestMetricsFollowTrafficAndRegistrations scrapes /metrics before and after
// traffic and checks the counters moved by exactly the traffic sent, and
// that the instance gauges follow Consul registrations.
func TestMetricsFollowTrafficAndRegistrations(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	u1, u2 := startBackend(t, "user-1", nil), startBackend(t, "user-2", nil)
	register(t, c, "user", u1)
	register(t, c, "user", u2)
	f := startFerry(t, agent.HTTPAddr, observabilityConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 2)

	before := scrape(t, f.AdminURL)
	ok0, _ := value(before, "ferry_proxy_requests_total", "route=users", "service=user", "code_class=2xx")
	att0, _ := value(before, "ferry_proxy_upstream_attempts_total", "service=user")
	nr0, _ := value(before, "ferry_proxy_unrouted_requests_total", "reason=no_route")
	const n = 25
	for i := range n {
		if status, _ := get(t, f.URL+"/api/user/"+strconv.Itoa(i)); status != 200 {
			t.Fatalf("request %d: status %d", i, status)
		}
	}
	for range 3 {
		get(t, f.URL+"/nowhere")
	}
	// The fast lane counts a request just after its response reached the
	// client: scrape until the last one is in.
	var after []series
	waitFor(t, 5*time.Second, "the last request counted", func() bool {
		after = scrape(t, f.AdminURL)
		ok1, _ := value(after, "ferry_proxy_requests_total", "route=users", "service=user", "code_class=2xx")
		return ok1-ok0 >= n
	})
	check := func(name string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	ok1, _ := value(after, "ferry_proxy_requests_total", "route=users", "service=user", "code_class=2xx")
	check("requests 2xx delta", ok1-ok0, n)
	att1, _ := value(after, "ferry_proxy_upstream_attempts_total", "service=user")
	check("attempts delta", att1-att0, n)
	nr1, _ := value(after, "ferry_proxy_unrouted_requests_total", "reason=no_route")
	check("no_route delta", nr1-nr0, 3)
	if v, ok := value(after, "ferry_proxy_requests_total", "route=users", "code_class=5xx"); !ok || v != 0 {
		t.Errorf("users 5xx: got %v (present %v), want a 0 series", v, ok)
	}
	d0, _ := value(before, "ferry_proxy_request_duration_seconds_count", "route=users")
	d1, _ := value(after, "ferry_proxy_request_duration_seconds_count", "route=users")
	check("duration histogram count delta (every request)", d1-d0, n)
	if v, ok := value(after, "ferry_proxy_request_duration_seconds_bucket", "route=users", "le=+Inf"); !ok || v != d1 {
		t.Errorf("duration histogram +Inf bucket: got %v (present %v), want the count %v", v, ok, d1)
	}
	if v, ok := value(after, "ferry_proxy_upstream_attempt_duration_seconds_count", "service=user"); !ok || v < n {
		t.Errorf("attempt duration histogram count: got %v (present %v), want at least %v", v, ok, n)
	}
	check("instances", must1(value(after, "ferry_upstream_instances", "service=user")), 2)
	check("healthy instances", must1(value(after, "ferry_upstream_healthy_instances", "service=user")), 2)
	check("ejected instances", must1(value(after, "ferry_upstream_ejected_instances", "service=user")), 0)
	check("in flight", must1(value(after, "ferry_proxy_requests_in_flight", "service=user")), 0)
	check("stale", must1(value(after, "ferry_discovery_stale", "service=user")), 0)
	if v, ok := value(after, "ferry_discovery_updates_total", "service=user"); !ok || v < 1 {
		t.Errorf("discovery updates: got %v (present %v), want at least the first answer", v, ok)
	}
	if v, ok := value(after, "ferry_discovery_last_contact_seconds", "service=user"); !ok || v < 0 || v > 60 {
		t.Errorf("last contact: got %v (present %v), want 0-60 s", v, ok)
	}
	if _, ok := value(after, "ferry_config_reloads_total"); !ok {
		t.Errorf("no ferry_config_reloads_total")
	}
	// A private registry: no Go runtime or process collectors, no
	// hostname prefix.
	for _, s := range after {
		if strings.HasPrefix(s.name, "go_") || strings.HasPrefix(s.name, "process_") || !strings.HasPrefix(s.name, "ferry_") {
			t.Errorf("unexpected series %s%v: only ferry_* metrics are exported", s.name, s.labels)
		}
		for k := range s.labels {
			switch k {
			case "route", "service", "code_class", "reason", "le", "listener", "result": // bounded by the configuration or a fixed list
			default:
				t.Errorf("series %s has label %q outside the bounded set", s.name, k)
			}
		}
	}

	// Registrations move the gauges.
	upd0 := metricNow(t, f, "ferry_discovery_updates_total", "service=user")
	u3 := startBackend(t, "user-3", nil)
	register(t, c, "user", u3)
	waitFor(t, 10*time.Second, "3 user instances in /metrics", func() bool {
		return metricNow(t, f, "ferry_upstream_instances", "service=user") == 3
	})
	if err := c.Agent().ServiceDeregister("user-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Agent().UpdateTTL("service:user-2", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "1 user instance in /metrics", func() bool {
		return metricNow(t, f, "ferry_upstream_instances", "service=user") == 1
	})
	if upd := metricNow(t, f, "ferry_discovery_updates_total", "service=user"); upd < upd0+2 {
		t.Errorf("discovery updates: %v after two changes, want at least %v", upd, upd0+2)
	}
}

func must1(v float64, _ bool) float64 { return v }

// upstreamsAnswer is GET /v1/upstreams.
type upstreamsAnswer struct {
	Services []struct {
		Name           string   `json:"name"`
		Known          bool     `json:"known"`
		Stale          bool     `json:"stale"`
		Index          uint64   `json:"index"`
		LastContact    *string  `json:"last_contact"`
		LastContactAge *float64 `json:"last_contact_age_seconds"`
		Error          string   `json:"error"`
		Healthy        int      `json:"healthy"`
		Instances      []struct {
			ID           string  `json:"id"`
			Node         string  `json:"node"`
			Address      string  `json:"address"`
			Port         int     `json:"port"`
			Weight       int     `json:"weight"`
			ConsulStatus string  `json:"consul_status"`
			ActiveCheck  string  `json:"active_check"`
			Ejected      bool    `json:"ejected"`
			EjectedUntil *string `json:"ejected_until"`
			Healthy      bool    `json:"healthy"`
			InFlight     int64   `json:"in_flight"`
		} `json:"instances"`
	} `json:"services"`
}

func upstreams(t *testing.T, f *ferry) upstreamsAnswer {
	t.Helper()
	status, body := get(t, f.AdminURL+"/v1/upstreams")
	if status != 200 {
		t.Fatalf("GET /v1/upstreams: %d %s", status, body)
	}
	var a upstreamsAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("GET /v1/upstreams: %v\n%s", err, body)
	}
	return a
}

// instanceStates lists a service's instances in /v1/upstreams as "id:state".
func instanceStates(a upstreamsAnswer, service string) []string {
	var out []string
	for _, s := range a.Services {
		if s.Name != service {
			continue
		}
		for _, i := range s.Instances {
			st := "healthy"
			switch {
			case i.Ejected:
				st = "ejected"
			case i.ActiveCheck == "failing":
				st = "failing"
			case !i.Healthy:
				st = "unhealthy"
			}
			out = append(out, i.ID+":"+st)
		}
	}
	return out
}

// TestAdminUpstreamsAndRoutes checks /v1/routes, and that /v1/upstreams
// reflects registrations, deregistrations, failing Consul checks, failing
// active checks and outlier ejections, with the metrics that count them.
func TestAdminUpstreamsAndRoutes(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	u1, u2 := startBackend(t, "user-1", nil), startBackend(t, "user-2", nil)
	register(t, c, "user", u1)
	register(t, c, "user", u2)
	broken := startBackend(t, "flaky-1", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	register(t, c, "flaky", broken)
	var sick atomic.Bool
	probed := startBackend(t, "probed-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && sick.Load() {
			http.Error(w, "sick", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("probed-1"))
	})
	register(t, c, "probed", probed)
	f := startFerry(t, agent.HTTPAddr, observabilityConfig)
	f.WaitReady()

	// Routes, as routing uses them.
	status, body := get(t, f.AdminURL+"/v1/routes")
	var routes struct {
		Routes []map[string]any `json:"routes"`
	}
	if err := json.Unmarshal([]byte(body), &routes); status != 200 || err != nil {
		t.Fatalf("GET /v1/routes: %d %v\n%s", status, err, body)
	}
	if len(routes.Routes) != 3 {
		t.Fatalf("got %d routes, want 3: %s", len(routes.Routes), body)
	}
	r0 := routes.Routes[0]
	if r0["name"] != "users" || r0["path_prefix"] != "/api/user" || r0["service"] != "user" || r0["host"] != "" || r0["strip_prefix"] != false {
		t.Errorf("first route: got %v", r0)
	}

	waitFor(t, 10*time.Second, "two healthy user instances in /v1/upstreams", func() bool {
		return strings.Join(instanceStates(upstreams(t, f), "user"), " ") == "user-1:healthy user-2:healthy"
	})
	a := upstreams(t, f)
	for _, s := range a.Services {
		if s.Name != "user" {
			continue
		}
		if !s.Known || s.Stale || s.Index == 0 || s.LastContact == nil || s.LastContactAge == nil || s.Error != "" || s.Healthy != 2 {
			t.Errorf("user service: got %+v", s)
		}
		for _, i := range s.Instances {
			if i.Address != "127.0.0.1" || i.Port == 0 || i.Weight != 1 || i.ConsulStatus != "passing" ||
				i.ActiveCheck != "none" || i.Node == "" || i.EjectedUntil != nil {
				t.Errorf("instance %s: got %+v", i.ID, i)
			}
		}
	}

	// A deregistration and a failing Consul check drop the instances.
	if err := c.Agent().ServiceDeregister("user-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "user-1 gone from /v1/upstreams", func() bool {
		return strings.Join(instanceStates(upstreams(t, f), "user"), " ") == "user-2:healthy"
	})
	if err := c.Agent().UpdateTTL("service:user-2", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	// A critical instance stays listed with its Consul status, out of routing.
	waitFor(t, 10*time.Second, "user-2 critical, not healthy, in /v1/upstreams", func() bool {
		a := upstreams(t, f)
		for _, s := range a.Services {
			if s.Name == "user" && len(s.Instances) == 1 && s.Instances[0].ConsulStatus != "critical" {
				return false
			}
		}
		return strings.Join(instanceStates(a, "user"), " ") == "user-2:unhealthy"
	})

	// Active checks: passing, then failing once the backend is sick.
	waitFor(t, 10*time.Second, "probed-1 actively checked", func() bool {
		return strings.Join(instanceStates(upstreams(t, f), "probed"), " ") == "probed-1:healthy"
	})
	fail0 := metricNow(t, f, "ferry_health_check_failures_total", "service=probed")
	sick.Store(true)
	waitFor(t, 10*time.Second, "probed-1 failing in /v1/upstreams", func() bool {
		return strings.Join(instanceStates(upstreams(t, f), "probed"), " ") == "probed-1:failing"
	})
	waitFor(t, 10*time.Second, "check failures counted", func() bool {
		return metricNow(t, f, "ferry_health_check_failures_total", "service=probed") > fail0 &&
			metricNow(t, f, "ferry_upstream_check_failing_instances", "service=probed") == 1 &&
			metricNow(t, f, "ferry_upstream_healthy_instances", "service=probed") == 0
	})

	// Outlier ejection: two 5xx in a row eject the only instance.
	for range 2 {
		if status, _ := get(t, f.URL+"/flaky/x"); status != 500 {
			t.Fatalf("flaky: got %d, want the upstream's 500", status)
		}
	}
	a = upstreams(t, f)
	if got := strings.Join(instanceStates(a, "flaky"), " "); got != "flaky-1:ejected" {
		t.Fatalf("after two 5xx: got %q, want flaky-1:ejected", got)
	}
	for _, s := range a.Services {
		if s.Name == "flaky" && (s.Instances[0].EjectedUntil == nil || s.Healthy != 0) {
			t.Errorf("ejected instance: got %+v", s)
		}
	}
	// Requests are counted just after their response reached the client.
	var ss []series
	waitFor(t, 5*time.Second, "both 5xx counted", func() bool {
		ss = scrape(t, f.AdminURL)
		v, _ := value(ss, "ferry_proxy_requests_total", "route=flaky", "code_class=5xx")
		return v >= 2
	})
	if v, _ := value(ss, "ferry_health_ejections_total", "service=flaky"); v != 1 {
		t.Errorf("ejections: got %v, want 1", v)
	}
	if v, _ := value(ss, "ferry_upstream_ejected_instances", "service=flaky"); v != 1 {
		t.Errorf("ejected instances: got %v, want 1", v)
	}
	if v, _ := value(ss, "ferry_proxy_requests_total", "route=flaky", "code_class=5xx"); v != 2 {
		t.Errorf("flaky 5xx: got %v, want 2", v)
	}
	if status, _ := get(t, f.URL+"/flaky/x"); status != 503 {
		t.Errorf("flaky while ejected: got %d, want 503", status)
	}

	// pprof is off by default.
	if s := statusOf(f.AdminURL + "/debug/pprof/"); s != 404 {
		t.Errorf("/debug/pprof/ with pprof off: got %d, want 404", s)
	}
}

// TestPprofWhenEnabled checks /debug/pprof/ on the admin listener only, and
// only with pprof = true.
func TestPprofWhenEnabled(t *testing.T) {
	agent := consultest.Start(t)
	f := startFerry(t, agent.HTTPAddr, "pprof = true\n"+basicConfig)
	if s := statusOf(f.AdminURL + "/debug/pprof/"); s != 200 {
		t.Errorf("admin /debug/pprof/: got %d, want 200", s)
	}
	if s := statusOf(f.AdminURL + "/debug/pprof/goroutine?debug=1"); s != 200 {
		t.Errorf("admin /debug/pprof/goroutine: got %d, want 200", s)
	}
	if s := statusOf(f.URL + "/debug/pprof/"); s != 404 {
		t.Errorf("data plane /debug/pprof/: got %d, want 404 (no route)", s)
	}
	for _, p := range []string{"/metrics", "/v1/upstreams", "/v1/routes", "/"} {
		if s := statusOf(f.URL + p); s != 404 {
			t.Errorf("data plane %s: got %d, want 404: the admin API is never on the data plane", p, s)
		}
	}
}

var (
	textLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (127\.0\.0\.1:\d+) "GET /api/user/logme HTTP/1\.1" 200 (\d+) (\d+\.\d{3})ms host=127\.0\.0\.1:\d+ route=users service=user upstream=(127\.0\.0\.1:\d+) attempts=1 request_id=[0-9a-f]{32}$`)
)

// TestAccessLogFields checks that an access log line carries every field, in
// text and in JSON.
func TestAccessLogFields(t *testing.T) {
	agent := consultest.Start(t)
	u1 := startBackend(t, "user-1", nil)
	register(t, agent.Client(), "user", u1)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			f := startFerry(t, agent.HTTPAddr, basicConfig+"log {\n  format = \""+format+"\"\n}\n")
			f.WaitReady()
			waitForInstances(t, f, "/api/user/x", 1)
			if status, _ := get(t, f.URL+"/api/user/logme"); status != 200 {
				t.Fatalf("status %d", status)
			}
			var line string
			waitFor(t, 5*time.Second, "the access log line", func() bool {
				for _, l := range strings.Split(f.AccessLog(), "\n") {
					if strings.Contains(l, "/api/user/logme") {
						line = l
						return true
					}
				}
				return false
			})
			if format == "text" {
				m := textLine.FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("text line %q does not match %s", line, textLine)
				}
				if m[5] != u1.Addr || m[3] != strconv.Itoa(len("user-1")) {
					t.Errorf("text line %q: upstream %s bytes %s, want %s and %d", line, m[5], m[3], u1.Addr, len("user-1"))
				}
				return
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("json line %q: %v", line, err)
			}
			want := map[string]any{
				"method": "GET", "path": "/api/user/logme", "proto": "HTTP/1.1", "status": float64(200),
				"bytes": float64(len("user-1")), "route": "users", "service": "user", "upstream": u1.Addr,
				"attempts": float64(1),
			}
			for k, v := range want {
				if e[k] != v {
					t.Errorf("json %s: got %v, want %v", k, e[k], v)
				}
			}
			for _, k := range []string{"time", "client", "host", "duration_ms", "request_id"} {
				if _, ok := e[k]; !ok {
					t.Errorf("json line has no %q: %s", k, line)
				}
			}
			if ts, _ := e["time"].(string); !strings.HasSuffix(ts, "Z") {
				t.Errorf("json time %q: want UTC RFC 3339", ts)
			}
			if cl, _ := e["client"].(string); !strings.HasPrefix(cl, "127.0.0.1:") {
				t.Errorf("json client %q: want 127.0.0.1:port", cl)
			}
		})
	}
}

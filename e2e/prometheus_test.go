package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// The deploy/ files checked with the real tools: promtool for the alert
// rules and their unit tests, and a real Prometheus scraping a running
// ferry under traffic, evaluating the alert rules and every query of the
// Grafana dashboard.

// toolBin finds a Prometheus tool; the test fails (never skips) without it.
func toolBin(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's prometheus package (apt-get install -y prometheus; .ci/run does)", name)
	}
	return p
}

func deployPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "deploy"}, parts...)...)
}

// TestAlertRulesWithPromtool: the rules and the scrape config are valid, and
// every alert's unit test (deploy/prometheus/alerts_test.yml) passes.
func TestAlertRulesWithPromtool(t *testing.T) {
	promtool := toolBin(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", deployPath("prometheus", "alerts.yml")},
		{"check", "config", deployPath("prometheus", "prometheus.yml")},
		{"test", "rules", deployPath("prometheus", "alerts_test.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a test group.
	rules, _ := os.ReadFile(deployPath("prometheus", "alerts.yml"))
	tests, _ := os.ReadFile(deployPath("prometheus", "alerts_test.yml"))
	for _, line := range strings.Split(string(rules), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- alert: "); ok {
			if !strings.Contains(string(tests), "alertname: "+name) {
				t.Errorf("alert %s has no unit test in alerts_test.yml", name)
			}
		}
	}
}

// dashboardPanel is a Grafana panel; a collapsed row holds its panels.
type dashboardPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"`
}

// dashboardQueries returns every query of the Grafana dashboard, by panel
// title (panels of collapsed rows included), and each template variable's
// query as PromQL ("label_values(m, l)", a Grafana function, as
// "group by (l) (m)").
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(deployPath("grafana", "dashboards", "ferry.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string           `json:"uid"`
		Panels     []dashboardPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query struct {
					Query string `json:"query"`
				} `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	out := make(map[string][]string)
	var walk func(ps []dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if d.UID == "" || len(out) < 10 {
		t.Fatalf("dashboard: uid %q, %d panels with queries", d.UID, len(out))
	}
	labelValues := regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Query.Query)
		if m == nil {
			t.Fatalf("dashboard variable %s: query %q is not label_values(metric, label)", v.Name, v.Query.Query)
		}
		out["variable $"+v.Name] = []string{"group by (" + m[2] + ") (" + m[1] + ")"}
	}
	return out
}

// alertMetrics returns the ferry metrics the alert rules read.
func alertMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(deployPath("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`\bferry_[a-z0-9_]+`).FindAllString(string(b), -1) {
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	if len(names) < 5 {
		t.Fatalf("alerts.yml reads %d ferry metrics: %v", len(names), names)
	}
	return names
}

// promQuery runs an instant query and returns the samples' values.
func promQuery(t *testing.T, base, q string) ([]float64, error) {
	t.Helper()
	resp, err := client.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, &queryError{r.Error}
	}
	var vs []float64
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, nil
}

type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

// TestPrometheusScrapesFerry runs Debian's Prometheus against a ferry under
// traffic (successes, 5xx, 404s, a refused instance that is ejected and
// retried around, a service without instances) with a TLS listener whose
// certificate expires in 5 days, with the alert rules of deploy/prometheus
// loaded, and checks: the target is up, every query of the Grafana
// dashboard (and of its variable) returns data (at least one sample that
// is a number), every metric an alert rule reads is exported, every rule
// evaluates without error, FerryNoHealthyInstance goes pending for the
// empty service and FerryCertificateExpiresSoon fires for the certificate.
func TestPrometheusScrapesFerry(t *testing.T) {
	promBin := toolBin(t, "prometheus")
	agent := consultest.Start(t)
	c := agent.Client()
	ok1 := startBackend(t, "user-1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/user/fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "/api/user/missing":
			w.WriteHeader(http.StatusNotFound)
		}
		w.Write([]byte("user-1"))
	})
	dead := startBackend(t, "user-2", nil)
	register(t, c, "user", ok1)
	register(t, c, "user", dead)
	soon := testcerts.NewCA(t, "prom").LeafUntil(time.Now().Add(5*24*time.Hour), "shop", "shop.example")
	f := startFerry(t, agent.HTTPAddr, basicConfig+`
listener "public" {
  address = "127.0.0.1:`+strconv.Itoa(consultest.FreePorts(t, 1)[0])+`"
  tls {
    certificate {
      cert_file = "`+soon.CertFile+`"
      key_file  = "`+soon.KeyFile+`"
    }
  }
}
route "payments" {
  path_prefix = "/api/pay"
  service     = "payment"
}
`)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 2)
	dead.kill()

	defer requestLoops(f, []string{"/api/user/a", "/api/user/fail", "/api/user/missing", "/api/pay/x", "/nowhere"},
		func() time.Duration { return 25 * time.Millisecond })()
	// A reload, so that the reload series move.
	if s, body := post(t, f.AdminURL+"/v1/reload"); s != 200 {
		t.Fatalf("reload: %d %s", s, body)
	}

	// Prometheus: the deploy rules, this ferry as the ferry job, 1 s steps.
	dir := t.TempDir()
	rules, err := filepath.Abs(deployPath("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	port := consultest.FreePorts(t, 1)[0]
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cfg := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - " + rules + "\n" +
		"scrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: ['" + strings.TrimPrefix(f.AdminURL, "http://") + "']\n"
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	prom := exec.CommandContext(ctx, promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--log.level=warn")
	prom.Stdout, prom.Stderr = &logs, &logs
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	waitFor(t, 30*time.Second, "prometheus ready", func() bool { return statusOf(base+"/-/ready") == 200 })
	waitFor(t, 30*time.Second, "a few scrapes of ferry", func() bool {
		vs, err := promQuery(t, base, `count_over_time(up{job="ferry"}[1m])`)
		return err == nil && len(vs) == 1 && vs[0] >= 6
	})
	if vs, err := promQuery(t, base, `up{job="ferry"}`); err != nil || len(vs) != 1 || vs[0] != 1 {
		t.Fatalf("up: %v %v, want 1", vs, err)
	}

	// Every dashboard query returns a number. $__rate_interval is Grafana's
	// (at least 4 scrape intervals); $service the "All" choice.
	queries := dashboardQueries(t)
	expand := strings.NewReplacer("$__rate_interval", "10s", "$service", ".*")
	n := 0
	for title, qs := range queries {
		for _, q := range qs {
			n++
			e := expand.Replace(q)
			waitFor(t, 20*time.Second, "data for panel "+strconv.Quote(title)+": "+e, func() bool {
				vs, err := promQuery(t, base, e)
				if err != nil {
					t.Fatalf("panel %q: query %s: %v", title, e, err)
				}
				for _, v := range vs {
					if !math.IsNaN(v) {
						return true
					}
				}
				return false
			})
		}
	}
	t.Logf("%d dashboard queries over %d panels returned data", n, len(queries))

	// Every metric the alert rules read is one ferry exports: a rule over a
	// misspelt metric would evaluate cleanly and never fire.
	for _, m := range alertMetrics(t) {
		if vs, err := promQuery(t, base, "group("+m+")"); err != nil || len(vs) == 0 {
			t.Errorf("alerts.yml reads %s, which ferry does not export (%v)", m, err)
		}
	}
	if vs, err := promQuery(t, base, `ferry_tls_certificate_expiry_seconds{listener="public"}`); err != nil || len(vs) != 1 ||
		vs[0] < 4*86400 || vs[0] > 5*86400 {
		t.Errorf("certificate expiry: %v %v, want about 5 days in seconds", vs, err)
	}

	// The rules evaluate cleanly against real series.
	var rr struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
					Error  string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	waitFor(t, 20*time.Second, "every rule evaluated", func() bool {
		_, body := get(t, base+"/api/v1/rules")
		if json.Unmarshal([]byte(body), &rr) != nil || len(rr.Data.Groups) == 0 {
			return false
		}
		for _, g := range rr.Data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return r.Health == "err" // reported below
				}
			}
		}
		return true
	})
	for _, g := range rr.Data.Groups {
		for _, r := range g.Rules {
			if r.Health != "ok" {
				t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.Error)
			}
		}
	}
	waitFor(t, 20*time.Second, "FerryNoHealthyInstance pending for the empty service", func() bool {
		_, body := get(t, base+"/api/v1/alerts")
		return strings.Contains(body, `"alertname":"FerryNoHealthyInstance"`) && strings.Contains(body, `"service":"payment"`)
	})
	waitFor(t, 20*time.Second, "FerryCertificateExpiresSoon firing for the listener's certificate", func() bool {
		var a struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		_, body := get(t, base+"/api/v1/alerts")
		if json.Unmarshal([]byte(body), &a) != nil {
			return false
		}
		for _, al := range a.Data.Alerts {
			l := al.Labels
			if l["alertname"] == "FerryCertificateExpiresSoon" && al.State == "firing" && l["listener"] == "public" && l["cert_file"] == soon.CertFile {
				return true
			}
		}
		return false
	})
}

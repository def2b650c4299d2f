package config

import (
	"io"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and always returns exactly one
// of a valid Config and error diagnostics, each diagnostic with a source
// range in the parsed file; and that a Config it accepts holds its
// invariants. Seeds: f.Add below and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"listen = \"127.0.0.1:8080\"\nadmin = \"\"\n",
		"route \"r\" {\n  path_prefix = \"/api/\"\n  service = \"s\"\n  host = \"[::1]\"\n}\n",
		"service \"s\" {\n  retries = 1e400\n  health_check {}\n}\n",
		"local_service {\n  name = \"a\"\n  port = 1\n  meta = { \"${1}\" = null }\n  tags = [null]\n}\n",
		"consul {\n  wait_time = <<EOT\n5s\nEOT\n}\n",
		"route \"r\" {\n  path_prefix = \"/\" \n  service = [for x in [1]: x]\n}\n",
		"log { level = \"info\" }\nlog \"x\" {}\nlog {\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Parse("fuzz.hcl", src)
		if (cfg == nil) != diags.HasErrors() {
			t.Fatalf("got Config %v with diagnostics %q; want exactly one of them", cfg != nil, diags)
		}
		for _, d := range diags.HCL() {
			if d.Subject == nil || d.Subject.Filename != "fuzz.hcl" || d.Subject.Start.Line < 1 {
				t.Fatalf("diagnostic %q %q: got range %v, want one in fuzz.hcl", d.Summary, d.Detail, d.Subject)
			}
		}
		for _, line := range strings.Split(strings.TrimSuffix(diags.String(), "\n"), "\n") {
			if diags != nil && !strings.HasPrefix(line, "fuzz.hcl:") {
				t.Fatalf("got line %q, want it to start with the position", line)
			}
		}
		if err := diags.FormatSource(io.Discard, 80, true); err != nil {
			t.Fatal(err)
		}
		if cfg != nil {
			checkInvariants(t, cfg)
		}
	})
}

// checkInvariants checks what every valid Config promises.
func checkInvariants(t *testing.T, cfg *Config) {
	t.Helper()
	if _, err := hostPort("listen")(cfg.Listen); err != nil {
		t.Errorf("Listen %q: %v", cfg.Listen, err)
	}
	if _, err := adminAddress(cfg.Admin); err != nil {
		t.Errorf("Admin %q: %v", cfg.Admin, err)
	}
	if cfg.ShutdownTimeout < 0 || cfg.Consul.WaitTime <= 0 || cfg.Consul.WaitTime > MaxWaitTime {
		t.Errorf("durations: got shutdown %v wait %v", cfg.ShutdownTimeout, cfg.Consul.WaitTime)
	}
	seen := make(map[routeKey]bool)
	for _, r := range cfg.Routes {
		if p, err := pathPrefix(r.PathPrefix); err != nil || p != r.PathPrefix {
			t.Errorf("route %q: PathPrefix %q not canonical (%q, %v)", r.Name, r.PathPrefix, p, err)
		}
		if h, err := routeHost(r.Host); err != nil || h != r.Host {
			t.Errorf("route %q: Host %q not normal (%q, %v)", r.Name, r.Host, h, err)
		}
		k := routeKey{r.Host, r.PathPrefix, conditionKey(r.HeaderConditions)}
		if seen[k] {
			t.Errorf("route %q: duplicate host and prefix %v", r.Name, k)
		}
		seen[k] = true
		if s := cfg.Services[r.Service]; s == nil || s.Name != r.Service {
			t.Errorf("route %q: service %q has no Service", r.Name, r.Service)
		}
	}
	for name, s := range cfg.Services {
		if s.Name != name || s.Retries < 0 || s.Retries > MaxRetries || s.ConnectTimeout <= 0 ||
			s.ResponseTimeout <= 0 || s.Outlier.ConsecutiveFailures < 1 || s.Outlier.BaseEjectionTime <= 0 {
			t.Errorf("service %q: got %+v", name, s)
		}
		if h := s.HealthCheck; h != nil && (h.Interval <= 0 || h.Timeout <= 0 || h.HealthyThreshold < 1 ||
			h.UnhealthyThreshold < 1 || !strings.HasPrefix(h.Path, "/")) {
			t.Errorf("service %q: got health check %+v", name, h)
		}
	}
	if ls := cfg.LocalService; ls != nil {
		if ls.Name == "" || ls.ID == "" || ls.Port < 1 || ls.Port > 65535 || ls.DeregisterDelay < 0 {
			t.Errorf("local service: got %+v", ls)
		}
		if c := ls.Check; c != nil && ((c.HTTP == "") == (c.TCP == "") || c.Interval <= 0 || c.Timeout <= 0 ||
			c.DeregisterCriticalAfter < 0) {
			t.Errorf("local check: got %+v", c)
		}
	}
}

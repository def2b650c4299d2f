package config

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// parse parses src as "t.hcl" and fails the test on any diagnostic.
func parse(t *testing.T, src string) *Config {
	t.Helper()
	cfg, diags := Parse("t.hcl", []byte(src))
	if diags != nil {
		t.Fatalf("Parse: got diagnostics\n%s\nwant none", diags)
	}
	if cfg == nil {
		t.Fatal("Parse: got nil Config and no diagnostics")
	}
	return cfg
}

// load loads path and fails the test on any diagnostic.
func load(t *testing.T, path string) *Config {
	t.Helper()
	cfg, diags := Load(path)
	if diags != nil {
		t.Fatalf("Load(%q): got diagnostics\n%s\nwant none", path, diags)
	}
	return cfg
}

// fakeHostname makes the default local service ID independent of the
// machine for the rest of the test.
func fakeHostname(t *testing.T, name string) {
	t.Helper()
	old := hostname
	hostname = func() (string, error) { return name, nil }
	t.Cleanup(func() { hostname = old })
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, src string
	}{
		{"empty", ""},
		{"comment only", "# nothing here\n"},
		{"empty blocks", "consul {}\nlog {}\n"},
		{"null values", "listen = null\nconsul {\n  wait_time = null\n}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parse(t, tc.src)
			want := &Config{
				Listen:          "127.0.0.1:8080",
				Admin:           "127.0.0.1:9901",
				ShutdownTimeout: 15 * time.Second,
				FastLane:        true,
				Consul: Consul{WaitTime: 30 * time.Second, AllowStale: true,
					MaxWatchConnections: 64, SnapshotReady: true},
				Log:      Log{Level: "info", Format: "text", AccessLog: "stdout"},
				Services: map[string]*Service{},
				Limits: Limits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
					IdleTimeout: 75 * time.Second, WriteIdleTimeout: time.Minute,
					MaxHeaderBytes: 65536, MaxHeaderCount: 100, MaxConnections: 10000},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if !reflect.DeepEqual(Default(), want) {
				t.Errorf("Default(): got %+v, want %+v", Default(), want)
			}
		})
	}
}

func TestBlockDefaults(t *testing.T) {
	fakeHostname(t, "host1")
	cfg := parse(t, `
service "user" {
  health_check {}
  outlier {}
}
route "users" {
  path_prefix = "/"
  service     = "user"
}
route "orders" {
  path_prefix = "/orders"
  service     = "order"
}
local_service {
  name = "order"
  port = 9002
  check {
    tcp = "127.0.0.1:9002"
  }
}
`)
	user := DefaultService("user")
	user.HealthCheck = &HealthCheck{Path: "/health", Interval: 5 * time.Second, Timeout: 2 * time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2}
	wantServices := map[string]*Service{
		"user": user,
		"order": {Name: "order", Balance: "round_robin", ConnectTimeout: 2 * time.Second,
			ResponseTimeout: 30 * time.Second, Retries: 2, MaxRequests: 1024, MaxPendingRequests: 4096, QueueTimeout: 5 * time.Second, Health: "passing",
			Outlier: Outlier{ConsecutiveFailures: 5, BaseEjectionTime: 30 * time.Second}},
	}
	if !reflect.DeepEqual(cfg.Services, wantServices) {
		t.Errorf("Services: got %s, want %s", dump(cfg.Services), dump(wantServices))
	}
	wantRoutes := []*Route{
		{Name: "users", PathPrefix: "/", Service: "user", MaxBodyBytes: 100 << 20},
		{Name: "orders", PathPrefix: "/orders", Service: "order", MaxBodyBytes: 100 << 20},
	}
	checkShorthand(t, cfg.Routes) // backends_test.go
	if !reflect.DeepEqual(cfg.Routes, wantRoutes) {
		t.Errorf("Routes: got %s, want %s", dump(cfg.Routes), dump(wantRoutes))
	}
	wantLocal := &LocalService{
		Name: "order", ID: "order-host1-9002", Port: 9002, DeregisterDelay: 2 * time.Second,
		Check: &LocalCheck{TCP: "127.0.0.1:9002", Interval: 5 * time.Second, Timeout: 2 * time.Second,
			DeregisterCriticalAfter: time.Minute},
	}
	if !reflect.DeepEqual(cfg.LocalService, wantLocal) {
		t.Errorf("LocalService: got %+v, want %+v", cfg.LocalService, wantLocal)
	}
}

func TestFullExample(t *testing.T) {
	got := load(t, "testdata/full.hcl")
	want := &Config{
		Listen:          "0.0.0.0:8081",
		Admin:           "127.0.0.1:9902",
		FastLane:        true,
		ShutdownTimeout: 20 * time.Second,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("2001:db8::/32")},
		Limits: Limits{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute, WriteIdleTimeout: 0, MaxHeaderBytes: 32768, MaxHeaderCount: 50, MaxConnections: 0},
		Consul: Consul{
			Address: "consul.internal:8500", Datacenter: "dc2",
			Token:    "00000000-0000-0000-0000-000000000001",
			WaitTime: time.Minute, AllowStale: false, UseCache: true,
			MaxWatchConnections: 32, SnapshotFile: "/var/lib/ferry/instances.json", SnapshotReady: false,
		},
		Log: Log{Level: "debug", Format: "json", AccessLog: "/var/log/ferry/access.log"},
		Services: map[string]*Service{
			"user": {
				Name: "user", Tag: "v2", Balance: "least_request",
				ConnectTimeout: 500 * time.Millisecond, ResponseTimeout: 90 * time.Second, Retries: 3, MaxRequests: 200,
				MaxPendingRequests: 50, QueueTimeout: 2 * time.Second,
				HealthCheck: &HealthCheck{Path: "/ready?full=1", Interval: 10 * time.Second,
					Timeout: time.Second, HealthyThreshold: 3, UnhealthyThreshold: 4},
				Outlier: Outlier{ConsecutiveFailures: 7, BaseEjectionTime: 45 * time.Second},
				Health:  "warning", PanicThreshold: 50, Failover: []string{"dc3", "dc1"},
			},
			"order": DefaultService("order"),
		},
		Routes: []*Route{
			{Name: "users", PathPrefix: "/api/user", Service: "user", StripPrefix: true, Host: "api.example.com", MaxBodyBytes: 1 << 20},
			{Name: "orders", PathPrefix: "/api/order", Service: "order", MaxBodyBytes: DefaultMaxBodyBytes},
		},
		LocalService: &LocalService{
			Name: "order", ID: "order-1", Address: "10.0.0.5", Port: 9002,
			Tags: []string{"v1", "canary"},
			Meta: map[string]string{"team": "orders", "tier": "backend"},
			Check: &LocalCheck{HTTP: "http://127.0.0.1:9002/health", Interval: 3 * time.Second,
				Timeout: time.Second, DeregisterCriticalAfter: 5 * time.Minute},
			DeregisterDelay: 4 * time.Second,
		},
	}
	if len(got.Files) != 1 || !strings.HasSuffix(got.Files[0], "/config/testdata/full.hcl") || got.Files[0][0] != '/' {
		t.Errorf("Files: got %q, want the absolute path of testdata/full.hcl", got.Files)
	}
	got.Files = nil
	checkShorthand(t, got.Routes) // backends_test.go
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(got), dump(want))
	}
}

// TestSpecExample checks that the examples of SPEC §3 and §10 are valid and
// mean the defaults they say they are.
func TestSpecExample(t *testing.T) {
	fakeHostname(t, "box")
	got := load(t, "testdata/spec.hcl")
	want := Default()
	want.Consul.Address = "127.0.0.1:8500"
	user := DefaultService("user")
	user.HealthCheck = defaultHealthCheck()
	want.Services["user"] = user
	want.Routes = []*Route{{Name: "users", PathPrefix: "/api/user", Service: "user", MaxBodyBytes: DefaultMaxBodyBytes}}
	want.LocalService = &LocalService{
		Name: "order", ID: "order-box-9002", Port: 9002, Tags: []string{"v1"},
		Meta: map[string]string{"team": "orders"}, Check: defaultLocalCheck(),
		DeregisterDelay: DefaultDeregisterDelay,
	}
	want.LocalService.Check.HTTP = "http://127.0.0.1:9002/health"
	got.Files = nil
	checkShorthand(t, got.Routes) // backends_test.go
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", dump(got), dump(want))
	}
}

func TestNormalisation(t *testing.T) {
	for _, tc := range []struct {
		name, attrs      string
		wantPrefix, host string
	}{
		{"trailing slash trimmed", `path_prefix = "/api/"`, "/api", ""},
		{"root kept", `path_prefix = "/"`, "/", ""},
		{"sub-delims allowed", `path_prefix = "/a:b@c/~x!$&'()*+,;="`, "/a:b@c/~x!$&'()*+,;=", ""},
		{"host lower-cased", "path_prefix = \"/\"\n  host = \"Api.Example.COM\"", "/", "api.example.com"},
		{"host trailing dot", "path_prefix = \"/\"\n  host = \"example.com.\"", "/", "example.com"},
		{"host IPv4", "path_prefix = \"/\"\n  host = \"10.0.0.1\"", "/", "10.0.0.1"},
		{"host IPv6 brackets", "path_prefix = \"/\"\n  host = \"[2001:DB8::1]\"", "/", "2001:db8::1"},
		{"host IPv6 bare", "path_prefix = \"/\"\n  host = \"::1\"", "/", "::1"},
		{"host empty", "path_prefix = \"/\"\n  host = \"\"", "/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parse(t, "route \"r\" {\n  service = \"s\"\n  "+tc.attrs+"\n}\n")
			r := cfg.Routes[0]
			if r.PathPrefix != tc.wantPrefix || r.Host != tc.host {
				t.Errorf("got prefix %q host %q, want prefix %q host %q", r.PathPrefix, r.Host, tc.wantPrefix, tc.host)
			}
		})
	}
}

func TestTypeConversions(t *testing.T) {
	// HCL converts between primitive types where the value allows it.
	cfg := parse(t, `
service "s" {
  retries = "3"
}
route "r" {
  path_prefix = "/"
  service     = "s"
}
consul {
  allow_stale = "false"
}
`)
	if got := cfg.Services["s"].Retries; got != 3 {
		t.Errorf("retries: got %d, want 3", got)
	}
	if cfg.Consul.AllowStale {
		t.Errorf("allow_stale: got true, want false")
	}
}

func TestSameHostDifferentPrefixOrHost(t *testing.T) {
	cfg := parse(t, `
route "a" {
  path_prefix = "/api"
  service     = "s"
}
route "b" {
  path_prefix = "/api"
  service     = "s"
  host        = "example.com"
}
route "c" {
  path_prefix = "/api/v2"
  service     = "s"
}
`)
	if got := len(cfg.Routes); got != 3 {
		t.Errorf("routes: got %d, want 3", got)
	}
}

func TestAdminPortZero(t *testing.T) {
	// Two free ports are two different addresses.
	cfg := parse(t, "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n")
	if cfg.Listen != "127.0.0.1:0" || cfg.Admin != "127.0.0.1:0" {
		t.Errorf("got listen %q admin %q, want both 127.0.0.1:0", cfg.Listen, cfg.Admin)
	}
}

func TestParseLeavesFilesEmpty(t *testing.T) {
	if got := parse(t, "").Files; got != nil {
		t.Errorf("got %q, want nil", got)
	}
}

// dump renders v for a failure message.
func dump(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestDefaultServiceIDWithoutHostname(t *testing.T) {
	old := hostname
	hostname = func() (string, error) { return "", errors.New("no host name") }
	t.Cleanup(func() { hostname = old })
	cfg := parse(t, "local_service {\n  name = \"app\"\n  port = 8080\n}\n")
	if got, want := cfg.LocalService.ID, "app-8080"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExplicitServiceIDKept(t *testing.T) {
	fakeHostname(t, "h")
	for _, tc := range []struct{ id, want string }{{`""`, "app-h-80"}, {`"app-1"`, "app-1"}, {"null", "app-h-80"}} {
		t.Run(tc.id, func(t *testing.T) {
			cfg := parse(t, "local_service {\n  name = \"app\"\n  port = 80\n  id = "+tc.id+"\n}\n")
			if got := cfg.LocalService.ID; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestLimitsErrors(t *testing.T) {
	for _, tc := range []errorCase{
		{name: "trusted proxy not an address", src: `trusted_proxies = ["10.0.0.0/8", "proxy.local"]`,
			want: []string{"t.hcl:1,34: Invalid trusted proxy"}, detail: `"10.0.0.0/8"`},
		{name: "trusted proxy bad prefix", src: `trusted_proxies = ["10.0.0.0/33"]`,
			want: []string{"t.hcl:1,20: Invalid trusted proxy"}},
		{name: "trusted proxies not a list", src: `trusted_proxies = "10.0.0.1"`,
			want: []string{"t.hcl:1,19: Incorrect attribute value type"}},
		{name: "zero header timeout", src: "limits {\n  read_header_timeout = \"0s\"\n}",
			want: []string{"t.hcl:2,25: Invalid duration"}, detail: "greater than zero"},
		{name: "negative read timeout", src: "limits {\n  read_timeout = \"-1s\"\n}",
			want: []string{"t.hcl:2,18: Invalid duration"}},
		{name: "zero idle timeout", src: "limits {\n  idle_timeout = \"0s\"\n}",
			want: []string{"t.hcl:2,18: Invalid duration"}},
		{name: "header bytes too small", src: "limits {\n  max_header_bytes = 100\n}",
			want: []string{"t.hcl:2,22: Number out of range"}, detail: "from 1024 to 1048576"},
		{name: "header count zero", src: "limits {\n  max_header_count = 0\n}",
			want: []string{"t.hcl:2,22: Number out of range"}},
		{name: "negative connections", src: "limits {\n  max_connections = -1\n}",
			want: []string{"t.hcl:2,21: Number out of range"}},
		{name: "unknown limit", src: "limits {\n  max_streams = 5\n}",
			want: []string{"t.hcl:2,3: Unsupported argument"}},
		{name: "two limits blocks", src: "limits {}\nlimits {}",
			want: []string{"t.hcl:2,1: Duplicate limits block"}},
		{name: "duplicate limits block checked too", src: "limits {}\nlimits {\n  idle_timeout = \"x\"\n}",
			want: []string{"t.hcl:2,1: Duplicate limits block", "t.hcl:3,18: Invalid duration"}},
		{name: "negative max_body_bytes", src: "route \"r\" {\n  path_prefix = \"/\"\n  service = \"s\"\n  max_body_bytes = -1\n}",
			want: []string{"t.hcl:4,20: Number out of range"}},
		{name: "fractional max_requests", src: "service \"s\" {\n  max_requests = 1.5\n}",
			want: []string{"t.hcl:2,18: Invalid number"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

func TestLimitsValues(t *testing.T) {
	cfg := parse(t, `
trusted_proxies = ["127.0.0.1", "10.1.2.3/8", "::ffff:192.0.2.1", "fd00::/8"]
limits {
  read_timeout    = "0s"
  max_connections = 5
}
service "s" {
  max_requests = 0
}
route "r" {
  path_prefix    = "/"
  service        = "s"
  max_body_bytes = 0
}
`)
	wantProxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("fd00::/8")}
	if !reflect.DeepEqual(cfg.TrustedProxies, wantProxies) {
		t.Errorf("TrustedProxies: got %v, want %v", cfg.TrustedProxies, wantProxies)
	}
	want := DefaultLimits()
	want.ReadTimeout, want.MaxConnections = 0, 5
	if cfg.Limits != want {
		t.Errorf("Limits: got %+v, want %+v", cfg.Limits, want)
	}
	if cfg.Limits.ReadHeaderTimeout != 10*time.Second {
		t.Errorf("ReadHeaderTimeout: got %v, want the default 10s", cfg.Limits.ReadHeaderTimeout)
	}
	if got := cfg.Services["s"].MaxRequests; got != 0 {
		t.Errorf("MaxRequests: got %d, want 0 (no cap)", got)
	}
	if got := cfg.Routes[0].MaxBodyBytes; got != 0 {
		t.Errorf("MaxBodyBytes: got %d, want 0 (no limit)", got)
	}
}

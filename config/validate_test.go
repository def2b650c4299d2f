package config

import (
	"strings"
	"testing"
)

// errorCase is a configuration with problems: want lists every diagnostic
// as "FILE:LINE,COL: Summary", in order; detail, when set, must appear in
// the output and notDetail must not.
type errorCase struct {
	name      string
	src       string
	want      []string
	detail    string
	notDetail string
}

// checkErrors parses tc.src as t.hcl and compares the diagnostics.
func checkErrors(t *testing.T, tc errorCase) {
	t.Helper()
	cfg, diags := Parse("t.hcl", []byte(tc.src))
	if cfg != nil {
		t.Errorf("got a Config, want nil")
	}
	if !diags.HasErrors() {
		t.Fatalf("got no errors, want %q", tc.want)
	}
	out := diags.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(tc.want) {
		t.Fatalf("got %d diagnostics:\n%s\nwant %d: %q", len(lines), out, len(tc.want), tc.want)
	}
	for i, line := range lines {
		if line != tc.want[i] && !strings.HasPrefix(line, tc.want[i]+": ") {
			t.Errorf("diagnostic %d: got %q, want %q followed by the detail", i, line, tc.want[i])
		}
	}
	if tc.detail != "" && !strings.Contains(out, tc.detail) {
		t.Errorf("got %q, want it to contain %q", out, tc.detail)
	}
	if tc.notDetail != "" && strings.Contains(out, tc.notDetail) {
		t.Errorf("got %q, want it not to contain %q", out, tc.notDetail)
	}
	for _, d := range diags.HCL() {
		if d.Subject == nil {
			t.Errorf("diagnostic %q has no source range", d.Summary)
		}
	}
}

func TestTopLevelErrors(t *testing.T) {
	for _, tc := range []errorCase{
		{name: "listen not host:port", src: `listen = "nope"`,
			want: []string{"t.hcl:1,10: Invalid listen address"}, detail: `such as "127.0.0.1:8080"`},
		{name: "listen empty", src: `listen = ""`,
			want: []string{"t.hcl:1,10: Invalid listen address"}},
		{name: "listen port too big", src: `listen = "127.0.0.1:99999"`,
			want: []string{"t.hcl:1,10: Invalid listen address"}, detail: "from 0 to 65535"},
		{name: "listen named port", src: `listen = "127.0.0.1:http"`,
			want: []string{"t.hcl:1,10: Invalid listen address"}},
		{name: "listen space in host", src: `listen = "local host:80"`,
			want: []string{"t.hcl:1,10: Invalid listen address"}},
		{name: "admin no port", src: `admin = "localhost"`,
			want: []string{"t.hcl:1,9: Invalid admin address"}, detail: `"" disables the admin API`},
		{name: "admin is listen", src: "listen = \"127.0.0.1:7000\"\nadmin = \"127.0.0.1:7000\"",
			want: []string{"t.hcl:2,9: Admin address is the listen address"}},
		{name: "listen is default admin", src: `listen = "127.0.0.1:9901"`,
			want: []string{"t.hcl:1,10: Admin address is the listen address"}},
		{name: "shutdown_timeout without unit", src: `shutdown_timeout = "15"`,
			want: []string{"t.hcl:1,20: Invalid duration"}, detail: "a number and a unit"},
		{name: "shutdown_timeout number", src: `shutdown_timeout = 15`,
			want: []string{"t.hcl:1,20: Invalid duration"}},
		{name: "shutdown_timeout negative", src: `shutdown_timeout = "-1s"`,
			want: []string{"t.hcl:1,20: Invalid duration"}, detail: "must not be negative"},
		{name: "pprof not a bool", src: `pprof = "yes"`,
			want: []string{"t.hcl:1,9: Incorrect attribute value type"}, detail: "must be true or false"},
		{name: "pprof a list", src: `pprof = [true]`,
			want: []string{"t.hcl:1,9: Incorrect attribute value type"}, detail: "must be true or false"},
		{name: "unknown attribute", src: `colour = "red"`,
			want: []string{"t.hcl:1,1: Unsupported argument"}},
		{name: "unknown block", src: "tls {\n}",
			want: []string{"t.hcl:1,1: Unsupported block type"}},
		{name: "wrong type", src: `listen = ["127.0.0.1:80"]`,
			want: []string{"t.hcl:1,10: Incorrect attribute value type"}, detail: "must be a string, not tuple"},
		{name: "object for string", src: `admin = { a = 1 }`,
			want: []string{"t.hcl:1,9: Incorrect attribute value type"}},
		{name: "variable", src: `listen = addr`,
			want: []string{"t.hcl:1,10: Variables not allowed"}},
		{name: "function call", src: `listen = upper("x:1")`,
			want: []string{"t.hcl:1,10: Function calls not allowed"}},
		{name: "attribute twice", src: "listen = \"a:1\"\nlisten = \"b:2\"",
			want: []string{"t.hcl:2,1: Attribute redefined"}},
		{name: "syntax error", src: "listen = \"a:1\"\nroute \"x\" {\n",
			want: []string{"t.hcl:2,11: Unclosed configuration block"}},
		{name: "consul wait_time zero", src: "consul {\n  wait_time = \"0s\"\n}",
			want: []string{"t.hcl:2,15: Invalid duration"}, detail: "greater than zero"},
		{name: "consul wait_time too long", src: "consul {\n  wait_time = \"11m\"\n}",
			want: []string{"t.hcl:2,15: Invalid duration"}, detail: "at most 10m0s"},
		{name: "consul allow_stale not bool", src: "consul {\n  allow_stale = \"maybe\"\n}",
			want: []string{"t.hcl:2,17: Incorrect attribute value type"}, detail: "true or false"},
		{name: "consul use_cache number", src: "consul {\n  use_cache = 1\n}",
			want: []string{"t.hcl:2,15: Incorrect attribute value type"}},
		{name: "consul address space", src: "consul {\n  address = \"a b:8500\"\n}",
			want: []string{"t.hcl:2,13: Invalid Consul address"}},
		{name: "consul datacenter space", src: "consul {\n  datacenter = \"dc 1\"\n}",
			want: []string{"t.hcl:2,16: Invalid datacenter"}},
		{name: "consul token never echoed", src: "consul {\n  token = \"s3cret-token\\n\"\n}",
			want: []string{"t.hcl:2,11: Invalid Consul token"}, notDetail: "s3cret"},
		{name: "consul unknown attribute", src: "consul {\n  addr = \"x\"\n}",
			want: []string{"t.hcl:2,3: Unsupported argument"}},
		{name: "consul twice", src: "consul {}\nconsul {}",
			want: []string{"t.hcl:2,1: Duplicate consul block"}, detail: "first defined here: t.hcl:1,1"},
		{name: "consul labelled", src: "consul \"x\" {}",
			want: []string{"t.hcl:1,8: Extraneous label for consul"}},
		{name: "log level", src: "log {\n  level = \"verbose\"\n}",
			want:   []string{"t.hcl:2,11: Invalid log level"},
			detail: `"trace", "debug", "info", "warn" or "error", not "verbose"`},
		{name: "log level case", src: "log {\n  level = \"INFO\"\n}",
			want: []string{"t.hcl:2,11: Invalid log level"}},
		{name: "log format", src: "log {\n  format = \"yaml\"\n}",
			want: []string{"t.hcl:2,12: Invalid log format"}, detail: `"text" or "json"`},
		{name: "log access_log empty", src: "log {\n  access_log = \"\"\n}",
			want: []string{"t.hcl:2,16: Invalid access_log"}, detail: `"off"`},
		{name: "log twice", src: "log {}\n\nlog {}",
			want: []string{"t.hcl:3,1: Duplicate log block"}, detail: "first defined here: t.hcl:1,1"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

func TestServiceErrors(t *testing.T) {
	hc := func(attr string) string { return "service \"s\" {\n  health_check {\n    " + attr + "\n  }\n}" }
	for _, tc := range []errorCase{
		{name: "unknown balance", src: "service \"s\" {\n  balance = \"fastest\"\n}",
			want:   []string{"t.hcl:2,13: Unknown balancer"},
			detail: `"round_robin", "random", "weighted" or "least_request", not "fastest"`},
		{name: "retries too many", src: "service \"s\" {\n  retries = 11\n}",
			want: []string{"t.hcl:2,13: Number out of range"}, detail: "from 0 to 10, not 11"},
		{name: "retries negative", src: "service \"s\" {\n  retries = -1\n}",
			want: []string{"t.hcl:2,13: Number out of range"}},
		{name: "retries fraction", src: "service \"s\" {\n  retries = 1.5\n}",
			want: []string{"t.hcl:2,13: Invalid number"}, detail: "whole number"},
		{name: "retries huge", src: "service \"s\" {\n  retries = 1e30\n}",
			want: []string{"t.hcl:2,13: Number out of range"}},
		{name: "retries string", src: "service \"s\" {\n  retries = \"two\"\n}",
			want: []string{"t.hcl:2,13: Incorrect attribute value type"}, detail: "a whole number, not string"},
		{name: "connect_timeout zero", src: "service \"s\" {\n  connect_timeout = \"0s\"\n}",
			want: []string{"t.hcl:2,21: Invalid duration"}},
		{name: "response_timeout malformed", src: "service \"s\" {\n  response_timeout = \"1x\"\n}",
			want: []string{"t.hcl:2,22: Invalid duration"}},
		{name: "tag with space", src: "service \"s\" {\n  tag = \"a b\"\n}",
			want: []string{"t.hcl:2,9: Invalid tag"}},
		{name: "service name", src: "service \"a b\" {}",
			want: []string{"t.hcl:1,9: Invalid service name"}, detail: `contains " "`},
		{name: "service name empty", src: "service \"\" {}",
			want: []string{"t.hcl:1,9: Invalid service name"}},
		{name: "service without name", src: "service {}",
			want: []string{"t.hcl:1,9: Missing name for service"}},
		{name: "service twice", src: "service \"s\" {}\nservice \"s\" {\n  retries = 99\n}",
			want:   []string{"t.hcl:2,1: Duplicate service \"s\"", "t.hcl:3,13: Number out of range"},
			detail: "first defined here: t.hcl:1,1"},
		{name: "health_check interval zero", src: hc(`interval = "0s"`),
			want: []string{"t.hcl:3,16: Invalid duration"}},
		{name: "health_check timeout negative", src: hc(`timeout = "-2s"`),
			want: []string{"t.hcl:3,15: Invalid duration"}},
		{name: "healthy_threshold zero", src: hc(`healthy_threshold = 0`),
			want: []string{"t.hcl:3,25: Number out of range"}, detail: "at least 1, not 0"},
		{name: "unhealthy_threshold zero", src: hc(`unhealthy_threshold = 0`),
			want: []string{"t.hcl:3,27: Number out of range"}},
		{name: "health_check path relative", src: hc(`path = "health"`),
			want: []string{"t.hcl:3,12: Invalid health check path"}},
		{name: "health_check unknown", src: hc(`port = 80`),
			want: []string{"t.hcl:3,5: Unsupported argument"}},
		{name: "health_check twice", src: "service \"s\" {\n  health_check {}\n  health_check {}\n}",
			want: []string{"t.hcl:3,3: Duplicate health_check block"}, detail: "first defined here: t.hcl:2,3"},
		{name: "outlier consecutive_failures zero",
			src:  "service \"s\" {\n  outlier {\n    consecutive_failures = 0\n  }\n}",
			want: []string{"t.hcl:3,28: Number out of range"}},
		{name: "outlier base_ejection_time zero",
			src:  "service \"s\" {\n  outlier {\n    base_ejection_time = \"0s\"\n  }\n}",
			want: []string{"t.hcl:3,26: Invalid duration"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

func TestRouteErrors(t *testing.T) {
	prefix := func(p string) string { return "route \"r\" {\n  path_prefix = " + p + "\n  service = \"s\"\n}" }
	host := func(h string) string {
		return "route \"r\" {\n  path_prefix = \"/\"\n  host = " + h + "\n  service = \"s\"\n}"
	}
	const invalid = "t.hcl:2,17: Invalid path_prefix"
	for _, tc := range []errorCase{
		{name: "missing path_prefix", src: "route \"r\" {\n  service = \"s\"\n}",
			want: []string{"t.hcl:1,1: Missing path_prefix"}},
		{name: "null path_prefix", src: prefix("null"),
			want: []string{"t.hcl:2,17: Missing path_prefix"}},
		{name: "relative", src: prefix(`"api"`), want: []string{invalid}, detail: `starting with "/"`},
		{name: "empty", src: prefix(`""`), want: []string{invalid}, detail: `use "/" to match every path`},
		{name: "double slash", src: prefix(`"/api//v1"`), want: []string{invalid}, detail: `contains "//"`},
		{name: "double slash at end", src: prefix(`"/api//"`), want: []string{invalid}},
		{name: "dot segment", src: prefix(`"/a/./b"`), want: []string{invalid}, detail: `a "." segment`},
		{name: "dot-dot segment", src: prefix(`"/a/.."`), want: []string{invalid}, detail: `a ".." segment`},
		{name: "question mark", src: prefix(`"/a?b=1"`), want: []string{invalid}, detail: `contains "?"`},
		{name: "hash", src: prefix(`"/a#b"`), want: []string{invalid}, detail: `contains "#"`},
		{name: "percent", src: prefix(`"/a%20b"`), want: []string{invalid}, detail: `contains "%"`},
		{name: "space", src: prefix(`"/a b"`), want: []string{invalid}, detail: `contains " "`},
		{name: "tab", src: prefix(`"/a\tb"`), want: []string{invalid}, detail: `contains "\t"`},
		{name: "non-ASCII", src: prefix(`"/café"`), want: []string{invalid}, detail: `contains "é"`},
		{name: "backslash", src: prefix(`"/a\\b"`), want: []string{invalid}},
		{name: "number", src: prefix(`1`), want: []string{invalid}},
		{name: "missing service", src: "route \"r\" {\n  path_prefix = \"/\"\n}",
			want: []string{"t.hcl:1,1: Missing service"}},
		{name: "invalid service", src: "route \"r\" {\n  path_prefix = \"/\"\n  service = \"u s\"\n}",
			want: []string{"t.hcl:3,13: Invalid service name"}},
		{name: "service with slash", src: "route \"r\" {\n  path_prefix = \"/\"\n  service = \"a/b\"\n}",
			want: []string{"t.hcl:3,13: Invalid service name"}},
		{name: "host with port", src: host(`"example.com:8080"`),
			want: []string{"t.hcl:3,10: Invalid host"}, detail: "without a port"},
		{name: "host with path", src: host(`"example.com/x"`), want: []string{"t.hcl:3,10: Invalid host"}},
		{name: "host with space", src: host(`"exa mple.com"`), want: []string{"t.hcl:3,10: Invalid host"}},
		{name: "host wildcard", src: host(`"*.example.com"`), want: []string{"t.hcl:3,10: Invalid host"}},
		{name: "host empty label", src: host(`"a..b"`), want: []string{"t.hcl:3,10: Invalid host"}},
		{name: "host IPv6 with port", src: host(`"[::1]:80"`), want: []string{"t.hcl:3,10: Invalid host"}},
		{name: "host too long", src: host(`"` + strings.Repeat("a.", 127) + `a"`),
			want: []string{"t.hcl:3,10: Invalid host"}, detail: "1 to 253 characters"},
		{name: "strip_prefix not bool", src: "route \"r\" {\n  path_prefix = \"/\"\n  service = \"s\"\n  strip_prefix = \"yes\"\n}",
			want: []string{"t.hcl:4,18: Incorrect attribute value type"}},
		{name: "route name", src: "route \"a b\" {\n  path_prefix = \"/\"\n  service = \"s\"\n}",
			want: []string{"t.hcl:1,7: Invalid route name"}},
		{name: "route twice", src: prefix(`"/a"`) + "\n" + prefix(`"/b"`),
			want: []string{"t.hcl:5,1: Duplicate route \"r\""}, detail: "first defined here: t.hcl:1,1"},
		{name: "same prefix after trimming",
			src: "route \"a\" {\n  path_prefix = \"/api\"\n  service = \"s\"\n}\n" +
				"route \"b\" {\n  path_prefix = \"/api/\"\n  service = \"t\"\n}",
			want:   []string{"t.hcl:6,17: Duplicate route"},
			detail: `as route "a", so it could never be chosen; first defined here: t.hcl:2,17`},
		{name: "same host in another case",
			src: "route \"a\" {\n  path_prefix = \"/\"\n  service = \"s\"\n  host = \"api.example.com\"\n}\n" +
				"route \"b\" {\n  path_prefix = \"/\"\n  service = \"s\"\n  host = \"API.Example.com\"\n}",
			want: []string{"t.hcl:7,17: Duplicate route"}, detail: `host ("api.example.com")`},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

func TestLocalServiceErrors(t *testing.T) {
	ls := func(attrs string) string { return "local_service {\n  name = \"app\"\n  port = 80\n  " + attrs + "\n}" }
	check := func(attrs string) string { return ls("check {\n    " + attrs + "\n  }") }
	for _, tc := range []errorCase{
		{name: "missing name", src: "local_service {\n  port = 80\n}",
			want: []string{"t.hcl:1,1: Missing name"}},
		{name: "missing port", src: "local_service {\n  name = \"app\"\n}",
			want: []string{"t.hcl:1,1: Missing port"}},
		{name: "missing both", src: "local_service {}",
			want: []string{"t.hcl:1,1: Missing name", "t.hcl:1,1: Missing port"}},
		{name: "port zero", src: "local_service {\n  name = \"app\"\n  port = 0\n}",
			want: []string{"t.hcl:3,10: Number out of range"}, detail: "from 1 to 65535"},
		{name: "port too big", src: "local_service {\n  name = \"app\"\n  port = 65536\n}",
			want: []string{"t.hcl:3,10: Number out of range"}},
		{name: "invalid name", src: "local_service {\n  name = \"my app\"\n  port = 80\n}",
			want: []string{"t.hcl:2,10: Invalid service name"}},
		{name: "id with slash", src: ls(`id = "a/b"`), want: []string{"t.hcl:4,8: Invalid service ID"}},
		{name: "address with port", src: ls(`address = "10.0.0.1:80"`),
			want: []string{"t.hcl:4,13: Invalid service address"}, detail: "without a port"},
		{name: "tags not a list", src: ls(`tags = { a = "b" }`),
			want: []string{"t.hcl:4,10: Incorrect attribute value type"}, detail: "a list of strings"},
		{name: "empty tag", src: ls(`tags = ["v1", ""]`), want: []string{"t.hcl:4,17: Invalid tag"}},
		{name: "null tag", src: ls(`tags = [null, "v1"]`), want: []string{"t.hcl:4,11: Invalid tag"}},
		{name: "reserved meta key", src: ls(`meta = { ok = "1", consul-x = "2" }`),
			want: []string{"t.hcl:4,22: Invalid meta"}, detail: `prefix "consul-"`},
		{name: "meta key characters", src: ls(`meta = { "a.b" = "1" }`),
			want: []string{"t.hcl:4,12: Invalid meta"}},
		{name: "meta value too long", src: ls(`meta = { k = "` + strings.Repeat("x", 513) + `" }`),
			want: []string{"t.hcl:4,12: Invalid meta"}, detail: "at most 512"},
		{name: "meta not a map", src: ls(`meta = "team"`),
			want: []string{"t.hcl:4,10: Incorrect attribute value type"}},
		{name: "deregister_delay negative", src: ls(`deregister_delay = "-1s"`),
			want: []string{"t.hcl:4,22: Invalid duration"}},
		{name: "check http and tcp", src: check("http = \"http://a/\"\n    tcp = \"a:1\""),
			want: []string{"t.hcl:6,5: Conflicting check type"}, detail: "http is set at t.hcl:5,5"},
		{name: "check neither", src: check(`interval = "5s"`),
			want: []string{"t.hcl:4,3: Missing check target"}},
		{name: "check http scheme", src: check(`http = "ftp://a/health"`),
			want: []string{"t.hcl:5,12: Invalid HTTP check"}},
		{name: "check tcp no port", src: check(`tcp = "localhost"`),
			want: []string{"t.hcl:5,11: Invalid TCP check"}},
		{name: "check interval zero", src: check("tcp = \"a:1\"\n    interval = \"0s\""),
			want: []string{"t.hcl:6,16: Invalid duration"}},
		{name: "check deregister_critical_after negative",
			src:  check("tcp = \"a:1\"\n    deregister_critical_after = \"-1m\""),
			want: []string{"t.hcl:6,33: Invalid duration"}},
		{name: "check twice", src: ls("check {\n    tcp = \"a:1\"\n  }\n  check {\n    tcp = \"b\"\n  }"),
			want: []string{"t.hcl:7,3: Duplicate check block", "t.hcl:8,11: Invalid TCP check"}},
		{name: "local_service twice", src: ls("") + "\nlocal_service {}",
			want: []string{
				"t.hcl:6,1: Duplicate local_service block", "t.hcl:6,1: Missing name", "t.hcl:6,1: Missing port",
			},
			detail: "first defined here: t.hcl:1,1"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

// TestEveryErrorReported checks that one file's errors are all reported,
// in source order, whatever their kind.
func TestEveryErrorReported(t *testing.T) {
	checkErrors(t, errorCase{
		src: `listen = "nope"
bogus  = 1

service "user" {
  balance = "fastest"
  retries = 11
  health_check {
    interval = "5x"
  }
}

route "a" {
  path_prefix = "api"
  service     = "user"
}

route "b" {
  path_prefix = "/api/"
  service     = "user"
  host        = "example.com:80"
}

route "c" {
  path_prefix = "/x"
  service     = "user"
}

route "d" {
  path_prefix = "/x/"
  service     = "user"
}

local_service {
  port = 0
}
`,
		want: []string{
			"t.hcl:1,10: Invalid listen address",
			"t.hcl:2,1: Unsupported argument",
			"t.hcl:5,13: Unknown balancer",
			"t.hcl:6,13: Number out of range",
			"t.hcl:8,16: Invalid duration",
			"t.hcl:13,17: Invalid path_prefix",
			"t.hcl:20,17: Invalid host",
			"t.hcl:29,17: Duplicate route",
			"t.hcl:33,1: Missing name",
			"t.hcl:34,10: Number out of range",
		},
	})
}

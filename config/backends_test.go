package config

import (
	"reflect"
	"strings"
	"testing"
)

// checkShorthand checks that each route's Backends is the one backend of
// its service = "..." shorthand, then clears it (and its source range) so
// that older tests can compare routes field by field.
func checkShorthand(t *testing.T, routes []*Route) {
	t.Helper()
	for _, r := range routes {
		if len(r.Backends) != 1 || r.Backends[0].Service != r.Service || r.Backends[0].Tag != "" || r.Backends[0].Weight != 1 {
			t.Errorf("route %q: got backends %+v, want the one backend %q of weight 1", r.Name, r.Backends, r.Service)
		}
		r.Backends = nil
	}
}

// plainBackends drops the source ranges, for comparisons.
func plainBackends(bs []Backend) []Backend {
	out := make([]Backend, len(bs))
	for i, b := range bs {
		out[i] = Backend{Service: b.Service, Tag: b.Tag, Weight: b.Weight}
	}
	return out
}

func TestBackendsSplit(t *testing.T) {
	cfg := parse(t, `
route "web" {
  path_prefix = "/"
  backend {
    service = "web"
    tag     = "v1"
    weight  = 90
  }
  backend {
    service = "web"
    tag     = "v2"
    weight  = 10
  }
  backend {
    service = "web-next"
  }
}
route "web-canary" {
  path_prefix = "/"
  header "x-canary" { values = ["always", "yes"] }
  header "X-Team" { values = ["a"] }
  backend {
    service = "web"
    tag     = "v2"
    weight  = 0
  }
  backend {
    service = "web"
  }
}
`)
	want := []Backend{{Service: "web", Tag: "v1", Weight: 90}, {Service: "web", Tag: "v2", Weight: 10}, {Service: "web-next", Weight: 1}}
	if got := plainBackends(cfg.Routes[0].Backends); !reflect.DeepEqual(got, want) {
		t.Errorf("backends: got %+v, want %+v", got, want)
	}
	if got := cfg.Routes[0].Service; got != "web" {
		t.Errorf("Service: got %q, want the first backend's, %q", got, "web")
	}
	if cfg.Routes[0].Backends[1].Range.Start.Line != 9 {
		t.Errorf("backend range: got line %d, want 9", cfg.Routes[0].Backends[1].Range.Start.Line)
	}
	if cfg.Services["web-next"] == nil {
		t.Error("a backend's service has no Service defaults")
	}
	conds := cfg.Routes[1].HeaderConditions
	if len(conds) != 2 || conds[0].Name != "X-Canary" || !reflect.DeepEqual(conds[0].Values, []string{"always", "yes"}) ||
		conds[1].Name != "X-Team" {
		t.Errorf("header conditions: got %+v", conds)
	}
	if len(cfg.Routes[0].HeaderConditions) != 0 {
		t.Errorf("route without conditions: got %+v", cfg.Routes[0].HeaderConditions)
	}
}

func TestBackendsNoUnusedWarning(t *testing.T) {
	_, diags := Parse("t.hcl", []byte(`
service "web" { retries = 1 }
route "r" {
  path_prefix = "/"
  backend { service = "api" }
  backend { service = "web" }
}`))
	if diags != nil {
		t.Errorf("got %s, want no warning: a backend names service web", diags)
	}
}

func TestBackendErrors(t *testing.T) {
	route := func(body string) string { return "route \"r\" {\n  path_prefix = \"/\"\n" + body + "\n}" }
	for _, tc := range []errorCase{
		{name: "service and backend", src: route("  service = \"a\"\n  backend { service = \"b\" }"),
			want: []string{"t.hcl:3,3: Conflicting service and backend"}, detail: "t.hcl:4,3"},
		{name: "neither", src: route(""),
			want: []string{"t.hcl:1,1: Missing service"}, detail: "backend blocks"},
		{name: "backend without service", src: route("  backend { weight = 2 }"),
			want: []string{"t.hcl:3,3: Missing service"}},
		{name: "negative weight", src: route("  backend {\n    service = \"a\"\n    weight = -1\n  }"),
			want: []string{"t.hcl:5,14: Number out of range"}},
		{name: "weight too big", src: route("  backend {\n    service = \"a\"\n    weight = 1000001\n  }"),
			want: []string{"t.hcl:5,14: Number out of range"}},
		{name: "all weights zero", src: route("  backend {\n    service = \"a\"\n    weight = 0\n  }\n  backend {\n    service = \"b\"\n    weight = 0\n  }"),
			want: []string{"t.hcl:3,3: No backend weight"}},
		{name: "duplicate backend", src: route("  backend {\n    service = \"a\"\n    tag = \"v1\"\n  }\n  backend {\n    service = \"a\"\n    tag = \"v1\"\n  }"),
			want: []string{"t.hcl:7,3: Duplicate backend"}, detail: "first defined here: t.hcl:3,3"},
		{name: "bad backend service", src: route("  backend { service = \"a b\" }"),
			want: []string{"t.hcl:3,23: Invalid service name"}},
		{name: "bad condition name", src: route("  service = \"a\"\n  header \"X Bad\" { values = [\"1\"] }"),
			want: []string{"t.hcl:4,10: Invalid header condition"}},
		{name: "condition without values", src: route("  service = \"a\"\n  header \"X-A\" {}"),
			want: []string{"t.hcl:4,3: Missing values"}},
		{name: "condition with no value", src: route("  service = \"a\"\n  header \"X-A\" { values = [] }"),
			want: []string{"t.hcl:4,27: Empty header condition"}},
		{name: "condition twice", src: route("  service = \"a\"\n  header \"X-A\" { values = [\"1\"] }\n  header \"x-a\" { values = [\"2\"] }"),
			want: []string{"t.hcl:5,10: Duplicate header condition"}, detail: "t.hcl:4,10"},
		{name: "same conditions twice", src: route("  service = \"a\"\n  header \"X-A\" { values = [\"1\"] }") + "\n" +
			"route \"s\" {\n  path_prefix = \"/\"\n  service = \"b\"\n  header \"x-a\" { values = [\"1\"] }\n}",
			want: []string{"t.hcl:7,17: Duplicate route"}, detail: "same header conditions"},
		{name: "service variable with a split", src: route("  backend { service = \"a\" }\n  backend { service = \"b\" }\n  headers { request_set = { X-S = \"{service}\" } }"),
			want: []string{"t.hcl:5,3: Ambiguous {service}"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

func TestHeaderConditionsMakeRoutesDistinct(t *testing.T) {
	cfg := parse(t, `
route "web" {
  path_prefix = "/"
  service = "web"
}
route "canary" {
  path_prefix = "/"
  service = "web-next"
  header "X-Canary" { values = ["always"] }
}
route "other" {
  path_prefix = "/"
  service = "web-next"
  header "X-Canary" { values = ["never"] }
}`)
	if len(cfg.Routes) != 3 {
		t.Fatalf("got %d routes, want 3", len(cfg.Routes))
	}
	if !strings.Contains(conditionKey(cfg.Routes[1].HeaderConditions), "always") {
		t.Errorf("condition key: got %q", conditionKey(cfg.Routes[1].HeaderConditions))
	}
}

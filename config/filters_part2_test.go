package config

import (
	"reflect"
	"testing"
	"time"
)

func TestCompressAndCacheDefaults(t *testing.T) {
	src := `
route "api" {
  path_prefix = "/api"
  service     = "api"
  compress {}
  cache {}
}
route "web" {
  path_prefix = "/"
  service     = "web"
}
`
	cfg, diags := Parse("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	api, web := cfg.Routes[0], cfg.Routes[1]
	if web.Compress != nil || web.Cache != nil {
		t.Errorf("route without blocks: got compress %v, cache %v, want nil", web.Compress, web.Cache)
	}
	c := api.Compress
	if c == nil || !reflect.DeepEqual(c.Encodings, []string{"zstd", "br", "gzip"}) || c.MinBytes != 1024 ||
		!reflect.DeepEqual(c.Types, DefaultCompressTypes) {
		t.Errorf("compress defaults: got %+v", c)
	}
	if c.DefRange.Start.Line != 5 {
		t.Errorf("compress range: got line %d, want 5", c.DefRange.Start.Line)
	}
	k := api.Cache
	if k == nil || k.MaxBytes != 64<<20 || k.MaxObjectBytes != 1<<20 || k.Store != "memory" || k.CollapseTimeout != 5*time.Second {
		t.Errorf("cache defaults: got %+v", k)
	}
	if cfg.Redis != nil {
		t.Errorf("got redis %+v, want nil", cfg.Redis)
	}
}

func TestCompressAndCacheValues(t *testing.T) {
	src := `
redis {
  address       = "127.0.0.1:6379"
  db            = 3
  password_file = "/etc/ferry/redis.pass"
  timeout       = "250ms"
}
route "api" {
  path_prefix = "/api"
  service     = "api"
  compress {
    encodings = ["gzip", "br"]
    min_bytes = 0
    types     = ["Text/*", "application/json"]
  }
  cache {
    max_bytes        = 1000
    max_object_bytes = 100
    store            = "redis"
    collapse_timeout = "0s"
  }
}
`
	cfg, diags := Parse("t.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := &Redis{Address: "127.0.0.1:6379", DB: 3, PasswordFile: "/etc/ferry/redis.pass", Timeout: 250 * time.Millisecond}
	if !reflect.DeepEqual(cfg.Redis, want) {
		t.Errorf("redis: got %+v, want %+v", cfg.Redis, want)
	}
	c := cfg.Routes[0].Compress
	if !reflect.DeepEqual(c.Encodings, []string{"gzip", "br"}) || c.MinBytes != 0 ||
		!reflect.DeepEqual(c.Types, []string{"text/*", "application/json"}) {
		t.Errorf("compress: got %+v", c)
	}
	k := cfg.Routes[0].Cache
	if k.MaxBytes != 1000 || k.MaxObjectBytes != 100 || k.Store != "redis" || k.CollapseTimeout != 0 {
		t.Errorf("cache: got %+v", k)
	}
}

func TestCompressAndCacheErrors(t *testing.T) {
	route := func(body string) string {
		return "route \"api\" {\n  path_prefix = \"/api\"\n  service = \"api\"\n" + body + "\n}\n"
	}
	for _, tc := range []errorCase{
		{name: "unknown encoding", src: route(`  compress { encodings = ["gzip", "deflate"] }`),
			want: []string{"t.hcl:4,35: Unknown encoding"}, detail: `"zstd", "br" or "gzip"`},
		{name: "encoding twice", src: route(`  compress { encodings = ["gzip", "gzip"] }`),
			want: []string{"t.hcl:4,35: Unknown encoding"}, detail: "listed twice"},
		{name: "no encodings", src: route(`  compress { encodings = [] }`),
			want: []string{"t.hcl:4,26: No encodings"}},
		{name: "negative min_bytes", src: route(`  compress { min_bytes = -1 }`),
			want: []string{"t.hcl:4,26: Number out of range"}},
		{name: "bad type", src: route(`  compress { types = ["text/html; charset=utf-8", "json", "*/*"] }`),
			want: []string{"t.hcl:4,23: Invalid media type", "t.hcl:4,51: Invalid media type", "t.hcl:4,59: Invalid media type"}},
		{name: "two compress blocks", src: route("  compress {}\n  compress {}"),
			want: []string{"t.hcl:5,3: Duplicate compress block"}},
		{name: "zero max_bytes", src: route(`  cache { max_bytes = 0 }`),
			want: []string{"t.hcl:4,23: Invalid max_bytes"}},
		{name: "object larger than cache", src: route(`  cache { max_object_bytes = 2000000000 }`),
			want: []string{"t.hcl:4,30: Invalid max_object_bytes"}, detail: "at most max_bytes (67108864)"},
		{name: "unknown store", src: route(`  cache { store = "disk" }`),
			want: []string{"t.hcl:4,19: Unknown cache store"}, detail: `"memory" or "redis"`},
		{name: "redis store without redis block", src: route(`  cache { store = "redis" }`),
			want: []string{"t.hcl:4,19: Missing redis block"}},
		{name: "bad collapse timeout", src: route(`  cache { collapse_timeout = "soon" }`),
			want: []string{"t.hcl:4,30: Invalid duration"}},
		{name: "two cache blocks", src: route("  cache {}\n  cache {}"),
			want: []string{"t.hcl:5,3: Duplicate cache block"}},
		{name: "unknown cache attribute", src: route(`  cache { ttl = "1m" }`),
			want: []string{"t.hcl:4,11: Unsupported argument"}},
		{name: "redis without address", src: `redis {}`,
			want: []string{"t.hcl:1,1: Missing address"}},
		{name: "redis bad address", src: `redis { address = "localhost" }`,
			want: []string{"t.hcl:1,19: Invalid Redis address"}},
		{name: "two redis blocks", src: "redis { address = \"a:1\" }\nredis { address = \"b:1\" }",
			want: []string{"t.hcl:2,1: Duplicate redis block"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

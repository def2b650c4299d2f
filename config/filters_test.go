package config

import (
	"reflect"
	"testing"
	"time"
)

func TestFiltersInOrderWritten(t *testing.T) {
	cfg := parse(t, `
redis {
  address       = "127.0.0.1:6379"
  db            = 2
  password_file = "/run/secrets/redis"
  timeout       = "250ms"
}
route "api" {
  path_prefix = "/api"
  service     = "api"
  headers {
    request_remove = ["x-debug"]
  }
  jwt {
    issuer         = "https://auth.example.com/"
    audiences      = ["shop", "admin"]
    jwks_url       = "https://auth.example.com/jwks.json"
    jwks_refresh   = "1m"
    hs256_secret_env = "FERRY_JWT_SECRET"
    leeway         = "5s"
    require_claims = { role = ["admin", "developer"], tier = "gold" }
    forward_claims = { sub = "x-user-id", email = "X-User-Email" }
    cache_size     = 250
  }
  rate_limit {
    rate  = 100
    per   = "1m"
    burst = 20
    key   = "claim:sub"
    store = "redis"
  }
  rate_limit {
    rate = 5
    key  = "header:x-api-key"
    max_keys = 10
  }
  headers {
    request_set     = { "X-Env" = "prod", "X-Client" = "{client_ip} via {route}" }
    request_add     = { "X-Trace" = "{request_id}" }
    response_set    = { "Strict-Transport-Security" = "max-age=63072000" }
    response_add    = { "Via" = "ferry {service}" }
    response_remove = ["Server", "X-Powered-By"]
  }
}`)
	wantRedis := &Redis{Address: "127.0.0.1:6379", DB: 2, PasswordFile: "/run/secrets/redis", Timeout: 250 * time.Millisecond}
	if !reflect.DeepEqual(cfg.Redis, wantRedis) {
		t.Errorf("Redis: got %+v, want %+v", cfg.Redis, wantRedis)
	}
	fs := cfg.Routes[0].Filters
	var kinds []string
	for _, f := range fs {
		kinds = append(kinds, f.Kind)
	}
	if want := []string{"headers", "jwt", "rate_limit", "rate_limit", "headers"}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("kinds: got %q, want %q", kinds, want)
	}
	if fs[1].Range.Start.Line != 14 || fs[1].Range.Filename != "t.hcl" {
		t.Errorf("jwt range: got %s, want t.hcl line 14", fs[1].Range)
	}
	wantJWT := &JWT{
		Issuer: "https://auth.example.com/", Audiences: []string{"shop", "admin"},
		JWKSURL: "https://auth.example.com/jwks.json", Refresh: time.Minute,
		HS256SecretEnv: "FERRY_JWT_SECRET", Leeway: 5 * time.Second,
		RequireClaims: map[string][]string{"role": {"admin", "developer"}, "tier": {"gold"}},
		ForwardClaims: []ClaimHeader{{Claim: "email", Header: "X-User-Email"}, {Claim: "sub", Header: "X-User-Id"}},
		CacheSize:     250,
	}
	if !reflect.DeepEqual(fs[1].JWT, wantJWT) {
		t.Errorf("jwt: got %+v, want %+v", fs[1].JWT, wantJWT)
	}
	rl := *fs[2].RateLimit
	rl.KeyRange = fs[2].RateLimit.KeyRange
	wantRL := RateLimit{Rate: 100, Per: time.Minute, Burst: 20, Key: KeyClaim, KeyName: "sub", Store: StoreRedis,
		MaxKeys: DefaultRateLimitMaxKeys, KeyRange: rl.KeyRange}
	if rl != wantRL {
		t.Errorf("rate_limit: got %+v, want %+v", rl, wantRL)
	}
	if rl.KeyRange.Start.Line != 29 {
		t.Errorf("key range: got line %d, want 29", rl.KeyRange.Start.Line)
	}
	rl2 := fs[3].RateLimit
	if rl2.Rate != 5 || rl2.Burst != 5 || rl2.Per != time.Second || rl2.Key != KeyHeader || rl2.KeyName != "X-Api-Key" ||
		rl2.Store != StoreLocal || rl2.MaxKeys != 10 {
		t.Errorf("second rate_limit: got %+v, want burst = rate, per 1s, header X-Api-Key, local", rl2)
	}
	wantHeaders := &Headers{
		RequestSet:     []HeaderValue{{"X-Client", "{client_ip} via {route}"}, {"X-Env", "prod"}},
		RequestAdd:     []HeaderValue{{"X-Trace", "{request_id}"}},
		ResponseSet:    []HeaderValue{{"Strict-Transport-Security", "max-age=63072000"}},
		ResponseAdd:    []HeaderValue{{"Via", "ferry {service}"}},
		ResponseRemove: []string{"Server", "X-Powered-By"},
	}
	if !reflect.DeepEqual(fs[4].Headers, wantHeaders) {
		t.Errorf("headers: got %+v, want %+v", fs[4].Headers, wantHeaders)
	}
	if !reflect.DeepEqual(fs[0].Headers.RequestRemove, []string{"X-Debug"}) {
		t.Errorf("first headers: got %+v", fs[0].Headers)
	}
}

func TestFilterDefaults(t *testing.T) {
	cfg := parse(t, `
route "api" {
  path_prefix = "/"
  service     = "api"
  jwt { jwks_file = "/etc/ferry/jwks.json" }
  rate_limit { rate = 10 }
}`)
	j := cfg.Routes[0].Filters[0].JWT
	if j.Leeway != DefaultJWTLeeway || j.Refresh != DefaultJWKSRefresh || j.JWKSFile != "/etc/ferry/jwks.json" ||
		j.Issuer != "" || j.Audiences != nil || j.RequireClaims != nil || j.ForwardClaims != nil || j.CacheSize != 1000 {
		t.Errorf("jwt defaults: got %+v", j)
	}
	r := cfg.Routes[0].Filters[1].RateLimit
	if r.Key != KeyClientIP || r.Store != StoreLocal || r.Burst != 10 || r.Per != time.Second {
		t.Errorf("rate_limit defaults: got %+v", r)
	}
	if cfg.Redis != nil {
		t.Errorf("Redis: got %+v, want nil without a redis block", cfg.Redis)
	}
	if got := parse(t, `redis { address = "r:6379" }`).Redis; got.Timeout != DefaultRedisTimeout || got.DB != 0 {
		t.Errorf("redis defaults: got %+v", got)
	}
}

func TestFilterErrors(t *testing.T) {
	route := func(body string) string {
		return "route \"r\" {\n  path_prefix = \"/\"\n  service = \"s\"\n" + body + "\n}"
	}
	for _, tc := range []errorCase{
		// jwt
		{name: "jwt without keys", src: route("  jwt { issuer = \"x\" }"),
			want: []string{"t.hcl:4,3: Missing keys"}},
		{name: "jwks file and url", src: route("  jwt {\n    jwks_file = \"/k\"\n    jwks_url = \"https://a/k\"\n  }"),
			want: []string{"t.hcl:6,5: Conflicting key sources"}, detail: "t.hcl:5,5"},
		{name: "secret file and env", src: route("  jwt {\n    hs256_secret_file = \"/k\"\n    hs256_secret_env = \"K\"\n  }"),
			want: []string{"t.hcl:6,5: Conflicting secret sources"}},
		{name: "bad jwks url", src: route("  jwt { jwks_url = \"ftp://a/k\" }"),
			want: []string{"t.hcl:4,20: Invalid jwks_url"}},
		{name: "bad env name", src: route("  jwt { hs256_secret_env = \"1X\" }"),
			want: []string{"t.hcl:4,28: Invalid hs256_secret_env"}},
		{name: "refresh without url", src: route("  jwt {\n    jwks_file = \"/k\"\n    jwks_refresh = \"1m\"\n  }"),
			want: []string{"t.hcl:6,5: jwks_refresh without jwks_url"}},
		{name: "refresh too often", src: route("  jwt {\n    jwks_url = \"https://a/k\"\n    jwks_refresh = \"1s\"\n  }"),
			want: []string{"t.hcl:6,20: Invalid duration"}},
		{name: "leeway too long", src: route("  jwt {\n    jwks_file = \"/k\"\n    leeway = \"1h\"\n  }"),
			want: []string{"t.hcl:6,14: Invalid duration"}},
		{name: "require_claims not a map", src: route("  jwt {\n    jwks_file = \"/k\"\n    require_claims = [\"admin\"]\n  }"),
			want: []string{"t.hcl:6,22: Incorrect attribute value type"}},
		{name: "require_claims empty list", src: route("  jwt {\n    jwks_file = \"/k\"\n    require_claims = { role = [] }\n  }"),
			want: []string{"t.hcl:6,24: Invalid require_claims"}},
		{name: "forward to a bad header", src: route("  jwt {\n    jwks_file = \"/k\"\n    forward_claims = { sub = \"X User\" }\n  }"),
			want: []string{"t.hcl:6,24: Invalid forward_claims"}},
		{name: "forward to Authorization", src: route("  jwt {\n    jwks_file = \"/k\"\n    forward_claims = { sub = \"authorization\" }\n  }"),
			want: []string{"t.hcl:6,24: Invalid forward_claims"}},
		{name: "forward two claims to one header", src: route("  jwt {\n    jwks_file = \"/k\"\n    forward_claims = { a = \"X-U\", b = \"x-u\" }\n  }"),
			want: []string{"t.hcl:6,35: Invalid forward_claims"}},
		{name: "negative cache_size", src: route("  jwt {\n    jwks_file = \"/k\"\n    cache_size = -1\n  }"),
			want: []string{"t.hcl:6,18: Number out of range"}, detail: "from 0 to 1000000, not -1"},
		{name: "cache_size too large", src: route("  jwt {\n    jwks_file = \"/k\"\n    cache_size = 1e7\n  }"),
			want: []string{"t.hcl:6,18: Number out of range"}, detail: "from 0 to 1000000"},
		{name: "fractional cache_size", src: route("  jwt {\n    jwks_file = \"/k\"\n    cache_size = 2.5\n  }"),
			want: []string{"t.hcl:6,18: Invalid number"}, detail: "whole number"},
		{name: "cache_size not a number", src: route("  jwt {\n    jwks_file = \"/k\"\n    cache_size = \"many\"\n  }"),
			want: []string{"t.hcl:6,18: Incorrect attribute value type"}, detail: "a whole number"},
		{name: "two jwt blocks", src: route("  jwt { jwks_file = \"/k\" }\n  jwt { jwks_file = \"/j\" }"),
			want: []string{"t.hcl:5,3: Duplicate jwt block"}, detail: "t.hcl:4,3"},
		// rate_limit
		{name: "rate missing", src: route("  rate_limit { burst = 1 }"),
			want: []string{"t.hcl:4,3: Missing rate"}},
		{name: "rate zero", src: route("  rate_limit { rate = 0 }"),
			want: []string{"t.hcl:4,23: Number out of range"}},
		{name: "per too short", src: route("  rate_limit {\n    rate = 1\n    per = \"1us\"\n  }"),
			want: []string{"t.hcl:6,11: Invalid duration"}},
		{name: "bad key", src: route("  rate_limit {\n    rate = 1\n    key = \"cookie:x\"\n  }"),
			want: []string{"t.hcl:6,11: Invalid rate-limit key"}},
		{name: "bad header key", src: route("  rate_limit {\n    rate = 1\n    key = \"header:\"\n  }"),
			want: []string{"t.hcl:6,11: Invalid rate-limit key"}},
		{name: "route key with a name", src: route("  rate_limit {\n    rate = 1\n    key = \"route:x\"\n  }"),
			want: []string{"t.hcl:6,11: Invalid rate-limit key"}},
		{name: "claim key without jwt", src: route("  rate_limit {\n    rate = 1\n    key = \"claim:sub\"\n  }"),
			want: []string{"t.hcl:6,11: Claim key without jwt"}},
		{name: "claim key before jwt", src: route("  rate_limit {\n    rate = 1\n    key = \"claim:sub\"\n  }\n  jwt { jwks_file = \"/k\" }"),
			want: []string{"t.hcl:6,11: Claim key without jwt"}, detail: "order written"},
		{name: "redis store without redis", src: route("  rate_limit {\n    rate = 1\n    store = \"redis\"\n  }"),
			want: []string{"t.hcl:6,13: Redis store without a redis block"}},
		{name: "unknown store", src: route("  rate_limit {\n    rate = 1\n    store = \"memcached\"\n  }"),
			want: []string{"t.hcl:6,13: Unknown rate-limit store"}},
		// headers
		{name: "empty headers", src: route("  headers {}"),
			want: []string{"t.hcl:4,3: Empty headers block"}},
		{name: "set a framing header", src: route("  headers { request_set = { Content-Length = \"5\" } }"),
			want: []string{"t.hcl:4,29: Invalid request_set"}, detail: "frames the message"},
		{name: "remove Host", src: route("  headers { request_remove = [\"host\"] }"),
			want: []string{"t.hcl:4,31: Invalid request_remove"}},
		{name: "value with a line break", src: route("  headers { response_set = { X-A = \"a\\nb\" } }"),
			want: []string{"t.hcl:4,30: Invalid response_set"}, detail: "control characters"},
		{name: "unknown variable", src: route("  headers { request_set = { X-A = \"{client_addr}\" } }"),
			want: []string{"t.hcl:4,29: Invalid request_set"}, detail: "{client_ip}"},
		{name: "same header twice", src: route("  headers { response_set = { X-A = \"1\", x-a = \"2\" } }"),
			want: []string{"t.hcl:4,41: Invalid response_set"}, detail: "case-insensitive"},
		{name: "unknown attribute", src: route("  headers { set = {} }"),
			want: []string{"t.hcl:4,3: Empty headers block", "t.hcl:4,13: Unsupported argument"}},
		// redis
		{name: "redis without address", src: "redis {}",
			want: []string{"t.hcl:1,1: Missing address"}},
		{name: "redis bad address", src: "redis { address = \"localhost\" }",
			want: []string{"t.hcl:1,19: Invalid Redis address"}},
		{name: "redis zero timeout", src: "redis {\n  address = \"r:1\"\n  timeout = \"0s\"\n}",
			want: []string{"t.hcl:3,13: Invalid duration"}},
		{name: "two redis blocks", src: "redis { address = \"r:1\" }\nredis { address = \"x\" }",
			want: []string{"t.hcl:2,1: Duplicate redis block", "t.hcl:2,19: Invalid Redis address"}},
		{name: "redis password inline", src: "redis {\n  address = \"r:1\"\n  password = \"x\"\n}",
			want: []string{"t.hcl:3,3: Unsupported argument"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

func TestVariableRefs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"plain", nil},
		{"{client_ip}", []string{"client_ip"}},
		{"a {route} b {host}", []string{"route", "host"}},
		{"{} {X} {a-b} {", nil},
		{"{{route}}", []string{"route"}},
	} {
		if got := variableRefs(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("variableRefs(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

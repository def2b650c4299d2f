package chain

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/internal/redistest"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/filtertest"
	"github.com/ferry-proxy/ferry/proxy/filter/jwt"
)

// testKey is a P-256 key with its JWKS document.
func testKey(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{"kty": "EC", "kid": "k1", "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])}}})
	return k, doc
}

func token(t *testing.T, k *ecdsa.PrivateKey, claims jwtlib.MapClaims) string {
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	tok := jwtlib.NewWithClaims(jwtlib.SigningMethodES256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse("ferry.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

func TestBuildRunsFiltersInOrder(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	key, doc := testKey(t)
	dir := t.TempDir()
	jwksPath := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwksPath, doc, 0o600)
	srv := redistest.Start(t)
	cfg := parse(t, `
redis { address = "`+srv.Addr+`" }
route "api" {
  path_prefix = "/api"
  service     = "api"
  headers {
    request_remove  = ["X-Debug"]
    response_remove = ["Server"]
  }
  jwt {
    jwks_file      = "`+jwksPath+`"
    require_claims = { role = ["admin"] }
    forward_claims = { sub = "X-User" }
  }
  rate_limit {
    rate  = 2
    per   = "1h"
    key   = "claim:sub"
    store = "redis"
  }
  headers {
    response_set = { "X-Served-By" = "{route}/{service}" }
  }
}`)
	client, err := NewRedisClient(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var stats filter.Stats
	c, err := Build(*cfg.Routes[0], Deps{Redis: client, Stats: &stats})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Names, ",") != "headers,jwt,rate_limit,headers" {
		t.Errorf("names: got %q", c.Names)
	}
	ctx := context.Background()
	admin := "Bearer " + token(t, key, jwtlib.MapClaims{"sub": "u1", "role": "admin"})

	r := filtertest.NewRequest("api", "192.0.2.1", "/api", "Authorization", admin, "X-Debug", "1", "X-User", "forged")
	if a := c.Request(ctx, r); a != nil {
		t.Fatalf("got %d, want the request to go on", a.Status)
	}
	if r.Upstream.Get("X-Debug") != "" || r.Upstream.Get("X-User") != "u1" {
		t.Errorf("upstream: got %v", r.Upstream)
	}
	w := filtertest.NewResponse(200, "Server", "app")
	c.Response(r, w)
	if w.H.Get("Server") != "" || w.H.Get("X-Served-By") != "api/api" || w.H.Get("RateLimit") != `"api";r=1;t=1800` {
		t.Errorf("response: got %v", w.H)
	}

	// The jwt filter answers before the rate limit counts.
	r = filtertest.NewRequest("api", "192.0.2.1", "/api", "Authorization", "Bearer "+token(t, key, jwtlib.MapClaims{"sub": "u1", "role": "guest"}))
	if a := c.Request(ctx, r); a == nil || a.Status != 403 || filter.AnsweredBy(r) != "jwt" {
		t.Fatalf("guest: got %v by %q, want 403 from jwt", a, filter.AnsweredBy(r))
	}
	r = filtertest.NewRequest("api", "192.0.2.2", "/api", "Authorization", admin)
	if a := c.Request(ctx, r); a != nil {
		t.Fatalf("second admin request: got %d", a.Status)
	}
	r = filtertest.NewRequest("api", "192.0.2.3", "/api", "Authorization", admin)
	if a := c.Request(ctx, r); a == nil || a.Status != 429 || filter.AnsweredBy(r) != "rate_limit" {
		t.Fatalf("third admin request: got %v by %q, want 429 from rate_limit (per user, from any address)", a, filter.AnsweredBy(r))
	}
	var got []string
	stats.Each(func(route, f, reason string, n uint64) {
		if n > 0 {
			got = append(got, route+"/"+f+"/"+reason)
		}
	})
	if strings.Join(got, " ") != "api/jwt/forbidden api/rate_limit/limited" {
		t.Errorf("stats: got %q", got)
	}
}

func TestBuildNoFilters(t *testing.T) {
	cfg := parse(t, `route "web" {
  path_prefix = "/"
  service = "web"
}`)
	c, err := Build(*cfg.Routes[0], Deps{})
	if err != nil || c != nil || !c.Empty() {
		t.Errorf("got %v, %v; want a nil (empty) chain", c, err)
	}
}

func TestBuildRemoteJWKSLifecycle(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	key, doc := testKey(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	defer srv.Close()
	cfg := parse(t, `route "api" {
  path_prefix = "/"
  service = "api"
  jwt { jwks_url = "`+srv.URL+`/jwks.json" }
}`)
	if _, err := Build(*cfg.Routes[0], Deps{}); err == nil || !strings.Contains(err.Error(), "Lifecycle") {
		t.Errorf("without a Lifecycle: got %v, want an error", err)
	}
	life := &Lifecycle{}
	c, err := Build(*cfg.Routes[0], Deps{Lifecycle: life, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	r := filtertest.NewRequest("api", "192.0.2.1", "/", "Authorization", "Bearer "+token(t, key, jwtlib.MapClaims{"sub": "u"}))
	if a := c.Request(context.Background(), r); a != nil {
		t.Fatalf("got %d, want the token verified with the fetched key", a.Status)
	}
	life.Close()
	life.Close()
	if a := c.Request(context.Background(), r); a != nil {
		t.Errorf("after Close: got %d, want the last key set kept", a.Status)
	}
	if _, err := Build(*cfg.Routes[0], Deps{Lifecycle: life}); err == nil {
		t.Error("Build with a closed Lifecycle: got no error")
	}
}

func TestBuildJWTCacheSize(t *testing.T) {
	key, doc := testKey(t)
	jwksPath := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(jwksPath, doc, 0o600)
	tok := "Bearer " + token(t, key, jwtlib.MapClaims{"sub": "u"})
	for _, tc := range []struct {
		attr         string
		want         int
		hits, misses uint64 // counted in Deps.Lookups
	}{{"", 1, 1, 1}, {"cache_size = 0", 0, 0, 0}} {
		cfg := parse(t, "route \"api\" {\n  path_prefix = \"/\"\n  service = \"api\"\n  jwt {\n    jwks_file = \""+jwksPath+"\"\n    "+tc.attr+"\n  }\n}")
		lookups := &filter.Stats{}
		x, err := buildJWT(*cfg.Routes[0], cfg.Routes[0].Filters[0], Deps{Lookups: lookups}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		f := x.(*jwt.Filter)
		for i := 0; i < 2; i++ {
			if a := f.Request(context.Background(), filtertest.NewRequest("api", "192.0.2.1", "/", "Authorization", tok)); a != nil {
				t.Fatalf("%q: got %d", tc.attr, a.Status)
			}
		}
		if got := f.CachedTokens(); got != tc.want {
			t.Errorf("%q: got %d cached tokens, want %d", tc.attr, got, tc.want)
		}
		c := lookups.For("api", config.FilterJWT, jwt.CacheResults...)
		if h, m := c.Get(jwt.CacheHit), c.Get(jwt.CacheMiss); h != tc.hits || m != tc.misses {
			t.Errorf("%q: %d hits and %d misses counted, want %d and %d", tc.attr, h, m, tc.hits, tc.misses)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tiny\n"), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"keys":[]}`), 0o600)
	for _, tc := range []struct {
		name, block, want string
		env               map[string]string
	}{
		{"missing jwks file", `jwt { jwks_file = "` + dir + `/none.json" }`, `route "api": jwt filter at ferry.hcl:4,3: jwks_file: open`, nil},
		{"bad jwks file", `jwt { jwks_file = "` + bad + `" }`, "holds no RS256, ES256 or EdDSA signing key", nil},
		{"short secret", `jwt { hs256_secret_file = "` + short + `" }`, "has 4 bytes; at least 32", nil},
		{"unset env", `jwt { hs256_secret_env = "FERRY_TEST_SECRET" }`, "FERRY_TEST_SECRET is not set", nil},
		{"short env secret", `jwt { hs256_secret_env = "S" }`, "the environment variable S has 6 bytes", map[string]string{"S": "secret"}},
		{"redis store without client", "rate_limit {\n    rate = 1\n    store = \"redis\"\n  }", "needs the redis block's client", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parse(t, "redis { address = \"127.0.0.1:1\" }\nroute \"api\" {\n  path_prefix = \"/\"\n  "+tc.block+"\n  service = \"api\"\n}")
			_, err := Build(*cfg.Routes[0], Deps{LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret\"") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

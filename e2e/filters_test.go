package e2e

// SPEC §13 end to end through the real binary: jwt (a JWKS file), a
// fleet-wide rate limit through a real Redis shared by two ferries, header
// rules, and a canary by header over a service's tagged instances, all
// against a real Consul agent.

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/redistest"
)

// signer makes RS256 tokens verified by the JWKS it wrote.
type signer struct {
	key  *rsa.PrivateKey
	jwks string // path
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set := map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}}
	data, _ := json.Marshal(set)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, jwks: path}
}

func (s *signer) token(t *testing.T, sub, role string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://auth.example/", "aud": "shop", "sub": sub, "role": role,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// call sends GET url with the headers given as name, value pairs.
func call(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestRouteFiltersEndToEnd(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	register(t, c, "api", startBackend(t, "api-1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "backend/1.0")
		io.WriteString(w, "user="+r.Header.Get("X-User-Id")+" env="+r.Header.Get("X-Env"))
	}))
	for _, tag := range []string{"v1", "v2"} {
		b := startBackend(t, "web-"+tag, nil)
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: b.Name, Name: "web", Tags: []string{tag}, Address: "127.0.0.1", Port: b.Port,
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
	}
	redis := redistest.Start(t)
	s := newSigner(t)
	cfg := `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
redis {
  address = "` + redis.Addr + `"
}
route "api" {
  path_prefix = "/api"
  service     = "api"
  jwt {
    issuer         = "https://auth.example/"
    audiences      = ["shop"]
    jwks_file      = "` + s.jwks + `"
    require_claims = { role = ["admin", "developer"] }
    forward_claims = { sub = "X-User-Id" }
  }
  rate_limit {
    rate  = 3
    per   = "1m"
    burst = 3
    key   = "claim:sub"
    store = "redis"
  }
  headers {
    request_set     = { "X-Env" = "prod" }
    response_set    = { "Strict-Transport-Security" = "max-age=63072000" }
    response_remove = ["Server"]
  }
}
route "web" {
  path_prefix = "/"
  backend {
    service = "web"
    tag     = "v1"
    weight  = 100
  }
  backend {
    service = "web"
    tag     = "v2"
    weight  = 0
  }
}
route "web-canary" {
  path_prefix = "/"
  header "X-Canary" {
    values = ["always"]
  }
  backend {
    service = "web"
    tag     = "v2"
  }
}
`
	a, b := startFerry(t, agent.HTTPAddr, cfg), startFerry(t, agent.HTTPAddr, cfg)
	a.WaitReady()
	b.WaitReady()

	// jwt: no token, a bad one, a role that is not allowed.
	resp, _ := call(t, a.URL+"/api/x")
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, _ = call(t, a.URL+"/api/x", "Authorization", "Bearer not.a.token")
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("bad token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ = call(t, a.URL+"/api/x", "Authorization", "Bearer "+s.token(t, "mallory", "guest")); resp.StatusCode != 403 {
		t.Errorf("role guest: %d, want 403", resp.StatusCode)
	}

	// A verified token: claims forwarded (a client's own X-User-Id
	// dropped), header rules applied both ways, and alice's limit of 3
	// a minute shared by both ferries through Redis.
	alice := "Bearer " + s.token(t, "alice", "developer")
	var codes []int
	for i, f := range []*ferry{a, b, a, b} {
		resp, body := call(t, f.URL+"/api/x", "Authorization", alice, "X-User-Id", "admin")
		codes = append(codes, resp.StatusCode)
		if i == 0 {
			if body != "user=alice env=prod" {
				t.Errorf("upstream saw %q, want user=alice env=prod", body)
			}
			if resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("Server") != "" ||
				resp.Header.Get("RateLimit-Policy") == "" {
				t.Errorf("response fields: %v", resp.Header)
			}
		}
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %v", resp.Header)
		}
	}
	if want := []int{200, 200, 200, 429}; !equalInts(codes, want) {
		t.Errorf("alice's requests across two ferries: %v, want %v", codes, want)
	}
	if resp, _ := call(t, b.URL+"/api/x", "Authorization", "Bearer "+s.token(t, "bob", "admin")); resp.StatusCode != 200 {
		t.Errorf("bob has his own limit: %d", resp.StatusCode)
	}

	// Canary: the split sends everything to v1; X-Canary: always to v2.
	for range 5 {
		if _, body := call(t, a.URL+"/shop"); body != "web-v1" {
			t.Fatalf("split: got %q, want web-v1", body)
		}
		if _, body := call(t, a.URL+"/shop", "X-Canary", "always"); body != "web-v2" {
			t.Fatalf("canary: got %q, want web-v2", body)
		}
	}

	// /v1/routes shows the split, the condition and the filters.
	var rv struct {
		Routes []struct {
			Name     string
			Filters  []string
			Backends []struct {
				Service, Tag string
				Weight       int
			}
			Headers []struct {
				Name   string
				Values []string
			}
		}
	}
	_, body := get(t, a.AdminURL+"/v1/routes")
	if err := json.Unmarshal([]byte(body), &rv); err != nil || len(rv.Routes) != 3 {
		t.Fatalf("/v1/routes: %v %s", err, body)
	}
	if got := fmt.Sprint(rv.Routes[0].Filters, rv.Routes[1].Backends, rv.Routes[2].Headers); got != "[jwt rate_limit headers] [{web v1 100} {web v2 0}] [{X-Canary [always]}]" {
		t.Errorf("/v1/routes: %s", got)
	}
	// The access log names the filter that answered.
	if log := a.AccessLog(); !strings.Contains(log, "answered_by=jwt") {
		t.Errorf("access log without answered_by=jwt:\n%s", log)
	}
	// Rejections are metered.
	var rejected float64
	var seen []string
	for _, s := range scrape(t, a.AdminURL) {
		if s.name == "ferry_filter_rejections_total" {
			rejected += s.value
			seen = append(seen, s.labels["filter"]+"/"+s.labels["reason"])
		}
	}
	if rejected < 3 { // missing, invalid, forbidden (alice was limited on b)
		t.Errorf("ferry_filter_rejections_total on ferry a: %v (%v), want at least 3", rejected, seen)
	}
	// Alice's second request on a was answered from the cache of verified
	// tokens; her first, mallory's and the bad token were looked up and missed.
	lookups := map[string]float64{}
	for _, s := range scrape(t, a.AdminURL) {
		if s.name == "ferry_filter_jwt_cache_lookups_total" && s.labels["route"] == "api" {
			lookups[s.labels["result"]] += s.value
		}
	}
	if lookups["hit"] < 1 || lookups["miss"] < 3 {
		t.Errorf("ferry_filter_jwt_cache_lookups_total on ferry a: %v, want at least 1 hit and 3 misses", lookups)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCompressAndSharedCacheEndToEnd: two ferries share a cache through a
// real Redis; compress runs after the cache, so the cache holds what
// clients get.
func TestCompressAndSharedCacheEndToEnd(t *testing.T) {
	agent := consultest.Start(t)
	text := strings.Repeat("a response worth compressing. ", 100)
	var calls atomic.Int32
	register(t, agent.Client(), "pages", startBackend(t, "pages-1", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=300")
		io.WriteString(w, text)
	}))
	redis := redistest.Start(t)
	cfg := `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
redis {
  address = "` + redis.Addr + `"
}
route "pages" {
  path_prefix = "/"
  service     = "pages"
  cache {
    store = "redis"
  }
  compress {
    encodings = ["gzip"]
  }
}
`
	a, b := startFerry(t, agent.HTTPAddr, cfg), startFerry(t, agent.HTTPAddr, cfg)
	a.WaitReady()
	b.WaitReady()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	fetch := func(f *ferry) (*http.Response, string) {
		req, _ := http.NewRequest("GET", f.URL+"/index.html", nil)
		req.Host = "shop.example" // one site behind both ferries: the host is part of the cache key
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("not gzip: %v (%v)", err, resp.Header)
		}
		body, _ := io.ReadAll(zr)
		return resp, string(body)
	}
	r1, body1 := fetch(a)
	r2, body2 := fetch(b)
	if body1 != text || body2 != text || r1.Header.Get("X-Cache") != "MISS" || r2.Header.Get("X-Cache") != "HIT" || calls.Load() != 1 {
		t.Errorf("a: %q, b: %q, upstream calls %d (want MISS, then a HIT from Redis on the other ferry, 1 call)",
			r1.Header.Get("X-Cache"), r2.Header.Get("X-Cache"), calls.Load())
	}
	if n, _ := value(scrape(t, b.AdminURL), "ferry_cache_requests_total", "route=pages", "result=hit"); n != 1 {
		t.Errorf("ferry_cache_requests_total{result=hit} on b: %v, want 1", n)
	}

	// /v1/routes shows the filters and the cache's figures.
	var routes struct {
		Routes []struct {
			Name    string   `json:"name"`
			Filters []string `json:"filters"`
			Cache   *struct {
				Hits, Stored uint64
			} `json:"cache"`
		} `json:"routes"`
	}
	_, body := get(t, b.AdminURL+"/v1/routes")
	if err := json.Unmarshal([]byte(body), &routes); err != nil || len(routes.Routes) != 1 ||
		strings.Join(routes.Routes[0].Filters, ",") != "cache,compress" || routes.Routes[0].Cache == nil || routes.Routes[0].Cache.Hits != 1 {
		t.Errorf("/v1/routes: %s", body)
	}

	// Purging the URL (both tiers) through one ferry: the next request on
	// the other goes upstream again.
	resp, err := http.Post(a.AdminURL+"/v1/cache/purge", "application/json",
		strings.NewReader(`{"url": "http://shop.example/index.html"}`))
	if err != nil {
		t.Fatal(err)
	}
	purged, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(purged), `"purged":`) || strings.Contains(string(purged), `"purged":0`) {
		t.Errorf("purge: %d %s", resp.StatusCode, purged)
	}
	if r3, body3 := fetch(a); r3.Header.Get("X-Cache") != "MISS" || body3 != text || calls.Load() != 2 {
		t.Errorf("after the purge: X-Cache %q, %d upstream calls, want a MISS and 2", r3.Header.Get("X-Cache"), calls.Load())
	}
	if resp, err := http.Post(a.AdminURL+"/v1/cache/purge", "application/json", strings.NewReader(`{"url": "not a url"}`)); err != nil || resp.StatusCode != 400 {
		t.Errorf("purge with a bad url: %v %v, want 400", resp, err)
	}
}

// TestReloadMovesTrafficSplit: a canary's weight goes 0 → 50 → 100 by
// reloads under steady request loops: no request fails, and each phase's
// traffic goes where the weights say.
func TestReloadMovesTrafficSplit(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	for _, tag := range []string{"v1", "v2"} {
		b := startBackend(t, "web-"+tag, nil)
		if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: b.Name, Name: "web", Tags: []string{tag}, Address: "127.0.0.1", Port: b.Port,
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(v1, v2 int) string {
		return fmt.Sprintf(`
listen = "%%LISTEN%%"
admin  = "%%ADMIN%%"
consul {
  address = "%%CONSUL%%"
}
route "web" {
  path_prefix = "/"
  backend {
    service = "web"
    tag     = "v1"
    weight  = %d
  }
  backend {
    service = "web"
    tag     = "v2"
    weight  = %d
  }
}
`, v1, v2)
	}
	f := startFerry(t, agent.HTTPAddr, cfg(100, 0))
	f.WaitReady()
	render := func(s string) string {
		s = strings.ReplaceAll(s, "%LISTEN%", hostPort(f.URL))
		s = strings.ReplaceAll(s, "%ADMIN%", hostPort(f.AdminURL))
		return strings.ReplaceAll(s, "%CONSUL%", agent.HTTPAddr)
	}

	var mu sync.Mutex
	counts := map[string]int{}
	var failed atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	lc := &http.Client{Timeout: 10 * time.Second}
	defer lc.CloseIdleConnections()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := lc.Get(f.URL + "/x")
				if err != nil {
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				mu.Lock()
				counts[string(body)]++
				mu.Unlock()
			}
		}()
	}
	phase := func(v1, v2 int) map[string]int {
		writeAtomic(t, f.Config, render(cfg(v1, v2)))
		if code, ans := postReload(t, f.AdminURL); code != http.StatusOK {
			t.Fatalf("reload to %d/%d: %d %+v", v1, v2, code, ans)
		}
		time.Sleep(200 * time.Millisecond) // requests begun on the old table end
		mu.Lock()
		clear(counts)
		mu.Unlock()
		time.Sleep(time.Second)
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(counts)
	}
	first := phase(100, 0)
	half := phase(50, 50)
	all := phase(0, 100)
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d requests failed across the reloads", failed.Load())
	}
	if first["web-v2"] != 0 || all["web-v1"] != 0 || half["web-v1"] == 0 || half["web-v2"] == 0 {
		t.Errorf("traffic by phase: 100/0 %v, 50/50 %v, 0/100 %v", first, half, all)
	}
	if n1, n2 := half["web-v1"], half["web-v2"]; n1+n2 > 0 && (n1 < (n1+n2)*4/10 || n2 < (n1+n2)*4/10) {
		t.Errorf("50/50 gave %d/%d", n1, n2)
	}
}

package main

// The route filters' scenarios (issues 16 and 17), each beside the same
// request through a route without filters ("-plain" targets) in the same
// alternating rounds:
//
//   - (h) a 4 KiB JSON response compressed with gzip: ferry's compress filter
//     against nginx's gzip module at the same level (6);
//   - (i) cache hits on a response marked Cache-Control: public, max-age=300:
//     ferry's cache filter against nginx's proxy_cache, both warmed first;
//   - (k) a route with jwt (RS256, key from a JWKS file) and a local
//     rate_limit that never limits, against the same route without filters
//     and with jwt alone (nginx has no JWT verification outside NGINX Plus).
//
// They need their own backend (JSON bodies, Cache-Control, a request count):
// ferrybench itself, started again with FERRYBENCH_FILTER_BACKEND set,
// registered in Consul as service "benchf". Nothing here runs unless one of
// h, i, k is in -scenarios, so the other scenarios' configurations are
// unchanged.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/bench/internal/benchkit"
)

const (
	filterService = "benchf"
	gzipLevel     = 6 // proxy/filter/compress/writer.go: gzipLevel; nginx's gzip_comp_level is set to it
	jsonSize      = 4096
	filterKeys    = "hik"
)

func init() {
	if addr := os.Getenv("FERRYBENCH_FILTER_BACKEND"); addr != "" {
		// Started by startFilterBackends: serve, never run the benchmark.
		if err := serveFilterBackend(addr); err != nil {
			fmt.Fprintln(os.Stderr, "filter backend:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	plainAndNginx := []string{"ferry", "ferry-plain", "nginx", "nginx-plain"}
	scenarios = append(scenarios,
		scenario{key: "h", title: "(h) 4 KiB JSON, gzip level 6 (Accept-Encoding: gzip)",
			path: "/h/data.json", headers: []string{"Accept-Encoding: gzip"}, targets: plainAndNginx},
		scenario{key: "i", title: "(i) cache hits: 4 KiB JSON, Cache-Control: public, max-age=300",
			path: "/i/cacheable.json", targets: plainAndNginx},
		// The Authorization header is added by startFilterBackends, once the
		// token is signed.
		scenario{key: "k", title: "(k) jwt (RS256) + local rate_limit, 64-byte responses",
			path: "/k/x", targets: []string{"ferry", "ferry-jwt", "ferry-plain"}},
	)
}

// filterLab is what the filter scenarios add to the lab.
type filterLab struct {
	only     string // which of h, i, k were asked for
	backends []string
	jwksPath string
	token    string
	notes    []string
	// backend requests and requests answered during each scenario's runs,
	// by scenario and target
	upstream map[string]map[string][2]int64
}

func filtersWanted(o options) string {
	var w strings.Builder
	for _, k := range filterKeys {
		if strings.ContainsRune(o.only, k) {
			w.WriteRune(k)
		}
	}
	return w.String()
}

// startFilterBackends starts two filter backends, registers them in Consul
// as service benchf, and writes the JWKS and token for (k).
func (l *lab) startFilterBackends(ctx context.Context, o options, client *api.Client) error {
	only := filtersWanted(o)
	if only == "" {
		return nil
	}
	f := &filterLab{only: only, upstream: map[string]map[string][2]int64{}}
	l.filters = f
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ports, err := benchkit.FreePorts(2)
	if err != nil {
		return err
	}
	for i, port := range ports {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := l.start("filter-backend-"+strconv.Itoa(i+1), self,
			[]string{"GOMAXPROCS=2", "FERRYBENCH_FILTER_BACKEND=" + addr})
		if err != nil {
			return err
		}
		if err := benchkit.WaitHTTP(ctx, "http://"+addr+"/health", 200, 10*time.Second, p); err != nil {
			return err
		}
		if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: filterService + "-" + strconv.Itoa(i+1), Name: filterService, Address: "127.0.0.1", Port: port,
		}); err != nil {
			return fmt.Errorf("register filter backend: %w", err)
		}
		f.backends = append(f.backends, addr)
	}
	if strings.Contains(only, "k") {
		jwks, token, err := signedToken()
		if err != nil {
			return err
		}
		f.jwksPath, f.token = filepath.Join(l.dir, "jwks.json"), token
		if err := os.WriteFile(f.jwksPath, jwks, 0o644); err != nil {
			return err
		}
		for i := range scenarios {
			if scenarios[i].key == "k" {
				scenarios[i].headers = []string{"Authorization: Bearer " + token}
			}
		}
	}
	return nil
}

// signedToken makes an RSA-2048 key, its JWKS, and an RS256 token valid for
// a day with the issuer and audience ferryFilterRoutes requires.
func signedToken() (jwks []byte, token string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", err
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, err = json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "bench-1", "use": "sig", "alg": "RS256",
		"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
	}}})
	if err != nil {
		return nil, "", err
	}
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": "https://bench.example/", "aud": "bench", "sub": "bench-user",
		"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
	})
	t.Header["kid"] = "bench-1"
	token, err = t.SignedString(key)
	return jwks, token, err
}

// ferryFilterRoutes is what the filter scenarios add to ferry's
// configuration: one route per filter scenario, /jwtonly (jwt alone) and
// /plain (no filter), all to benchf; the last two strip their prefix so that
// the backend sees the same path.
func (l *lab) ferryFilterRoutes() string {
	f := l.filters
	if f == nil {
		return ""
	}
	jwtBlock := fmt.Sprintf(`  jwt {
    issuer    = "https://bench.example/"
    audiences = ["bench"]
    jwks_file = %q
  }
`, f.jwksPath)
	var b strings.Builder
	route := func(name, prefix string, strip bool, body string) {
		fmt.Fprintf(&b, "\nroute %q {\n  path_prefix = %q\n  service     = %q\n", name, prefix, filterService)
		if strip {
			b.WriteString("  strip_prefix = true\n")
		}
		b.WriteString(body)
		b.WriteString("}\n")
	}
	if strings.Contains(f.only, "h") {
		route("filter-h", "/h", false, "  compress {\n    encodings = [\"gzip\"]\n  }\n")
	}
	if strings.Contains(f.only, "i") {
		route("filter-i", "/i", false, "  cache {}\n")
	}
	if strings.Contains(f.only, "k") {
		// A limit high enough never to limit: every request pays the
		// bucket's cost (one key, the client's address) and passes.
		route("filter-k", "/k", false, jwtBlock+`  rate_limit {
    rate  = 100000000
    burst = 100000000
    store = "local"
  }
`)
		route("filter-jwt", "/jwtonly", true, jwtBlock)
	}
	route("filter-plain", "/plain", true, "")
	return b.String()
}

// nginxFilterConf is what the filter scenarios add to nginx's http block
// (the cache zone, the benchf upstream) and server block (/h/ with gzip at
// ferry's level, /i/ with proxy_cache, /plain/ with neither).
func (l *lab) nginxFilterConf() (httpExtra, serverExtra string, err error) {
	f := l.filters
	if f == nil {
		return "", "", nil
	}
	cacheDir := filepath.Join(l.dir, "nginx-cache")
	if err := os.MkdirAll(cacheDir, 0o777); err != nil {
		return "", "", err
	}
	// nginx's workers run as nobody and open cache files by path: they need
	// to pass through the work dir (0700 from MkdirTemp; traversal only).
	os.Chmod(cacheDir, 0o777)
	os.Chmod(l.dir, 0o711)
	httpExtra = fmt.Sprintf(`  proxy_cache_path %s levels=1:2 keys_zone=bench:10m max_size=64m inactive=10m use_temp_path=off;
  upstream %s {
    server %s;
    server %s;
    keepalive 64;
  }`, cacheDir, filterService, f.backends[0], f.backends[1])
	const proxy = `proxy_http_version 1.1;
      proxy_set_header Connection "";`
	serverExtra = fmt.Sprintf(`    location /h/ {
      proxy_pass http://%[1]s;
      %[2]s
      gzip on;
      gzip_comp_level %[3]d;
      gzip_types application/json;
      gzip_min_length 1024;
      gzip_proxied any;
      gzip_vary on;
    }
    location /i/ {
      proxy_pass http://%[1]s;
      %[2]s
      proxy_cache bench;
      proxy_cache_lock on;
      add_header X-Cache $upstream_cache_status;
    }
    location /plain/ {
      proxy_pass http://%[1]s/;
      %[2]s
    }`, filterService, proxy, gzipLevel)
	return httpExtra, serverExtra, nil
}

// addFilterTargets adds the second routes of ferry and nginx as targets of
// their own, measured in the filter scenarios only.
func (l *lab) addFilterTargets() {
	f := l.filters
	if f == nil {
		return
	}
	var more []*target
	for _, t := range l.targets {
		switch t.name {
		case "ferry":
			more = append(more, &target{name: "ferry-plain", url: t.url + "/plain", proc: t.proc, scenarios: f.only})
			if strings.Contains(f.only, "k") {
				more = append(more, &target{name: "ferry-jwt", url: t.url + "/jwtonly", proc: t.proc, scenarios: "k"})
			}
		case "nginx":
			more = append(more, &target{name: "nginx-plain", url: t.url + "/plain", proc: t.proc, scenarios: f.only})
		}
	}
	l.targets = append(l.targets, more...)
}

// prepareFilters checks that each filter does what its scenario measures —
// gzip bodies that decompress to the JSON, cache hits after a warm-up, 401
// without the token — and notes the compressed sizes.
func (l *lab) prepareFilters(ctx context.Context) error {
	f := l.filters
	if f == nil {
		return nil
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	get := func(url string, header ...string) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return nil, nil, err
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	want := jsonBody()
	for _, t := range l.targets {
		if strings.Contains(f.only, "h") && (t.name == "ferry" || t.name == "nginx") {
			resp, b, err := get(t.url+"/h/data.json", "Accept-Encoding", "gzip")
			if err != nil {
				return fmt.Errorf("(h) %s: %w", t.name, err)
			}
			if resp.Header.Get("Content-Encoding") != "gzip" {
				return fmt.Errorf("(h) %s: not compressed (status %d, Content-Encoding %q)", t.name, resp.StatusCode, resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("(h) %s: %w", t.name, err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, want) {
				return fmt.Errorf("(h) %s: the gzip body is not the backend's JSON (%v)", t.name, err)
			}
			f.note("(h) %s: %d-byte JSON body sent as %d bytes of gzip (%.2f), Vary %q, framing %s",
				t.name, len(want), len(b), float64(len(b))/float64(len(want)), resp.Header.Get("Vary"), framing(resp))
		}
		if strings.Contains(f.only, "i") && (t.name == "ferry" || t.name == "nginx") {
			var xc []string
			for range 3 {
				resp, b, err := get(t.url + "/i/cacheable.json")
				if err != nil {
					return fmt.Errorf("(i) %s: %w", t.name, err)
				}
				if resp.StatusCode != 200 || !bytes.Equal(b, want) {
					return fmt.Errorf("(i) %s: status %d, %d bytes", t.name, resp.StatusCode, len(b))
				}
				xc = append(xc, resp.Header.Get("X-Cache"))
			}
			if xc[len(xc)-1] != "HIT" {
				return fmt.Errorf("(i) %s: no cache hit after warming (X-Cache %v)", t.name, xc)
			}
			f.note("(i) %s: warm-up X-Cache %s", t.name, strings.Join(xc, ", "))
		}
		if strings.Contains(f.only, "k") && (t.name == "ferry" || t.name == "ferry-jwt") {
			resp, _, err := get(t.url + "/k/x")
			if err != nil {
				return fmt.Errorf("(k) %s: %w", t.name, err)
			}
			if resp.StatusCode != 401 {
				return fmt.Errorf("(k) %s: %d without a token, want 401", t.name, resp.StatusCode)
			}
			resp, _, err = get(t.url+"/k/x", "Authorization", "Bearer "+f.token)
			if err != nil {
				return fmt.Errorf("(k) %s: %w", t.name, err)
			}
			if resp.StatusCode != 200 {
				return fmt.Errorf("(k) %s: %d with the token, want 200", t.name, resp.StatusCode)
			}
			f.note("(k) %s: 401 without the token, 200 with it; RateLimit %q", t.name, resp.Header.Get("RateLimit"))
		}
	}
	return nil
}

func framing(resp *http.Response) string {
	if len(resp.TransferEncoding) > 0 {
		return strings.Join(resp.TransferEncoding, ",")
	}
	return "Content-Length " + strconv.FormatInt(resp.ContentLength, 10)
}

func (f *filterLab) note(format string, args ...any) {
	f.notes = append(f.notes, fmt.Sprintf(format, args...))
}

// beforeRun reads the filter backends' request count before a run of a
// filter scenario; the function it returns reads it again after the run and
// keeps the difference, so that (i) shows how many hits went upstream.
func (l *lab) beforeRun(s scenario, t *target) func(run) {
	f := l.filters
	if f == nil || !strings.Contains(filterKeys, s.key) {
		return func(run) {}
	}
	n0, err0 := f.backendRequests()
	return func(r run) {
		n1, err1 := f.backendRequests()
		if err0 != nil || err1 != nil {
			f.note("(%s) %s: backend count unreadable: %v %v", s.key, t.name, err0, err1)
			return
		}
		if f.upstream[s.key] == nil {
			f.upstream[s.key] = map[string][2]int64{}
		}
		u := f.upstream[s.key][t.name]
		f.upstream[s.key][t.name] = [2]int64{u[0] + n1 - n0, u[1] + r.Requests}
	}
}

func (f *filterLab) backendRequests() (int64, error) {
	var total int64
	for _, b := range f.backends {
		resp, err := http.Get("http://" + b + "/count")
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// printNotes prints the filter checks and the backend requests per run.
func (l *lab) printNotes(w io.Writer) {
	f := l.filters
	if f == nil {
		return
	}
	fmt.Fprintln(w, "## Filter scenarios: checks and upstream requests")
	fmt.Fprintln(w)
	for _, n := range f.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	for _, k := range filterKeys {
		byTarget := f.upstream[string(k)]
		for _, name := range []string{"ferry", "ferry-jwt", "ferry-plain", "nginx", "nginx-plain"} {
			if u, ok := byTarget[name]; ok {
				fmt.Fprintf(w, "- (%c) %s: %d backend requests during the runs, %d answered (wrk's count)\n", k, name, u[0], u[1])
			}
		}
	}
	fmt.Fprintln(w)
}

// jsonBody is the filter backend's 4 KiB JSON document: a page of catalogue
// items from a fixed seed, padded to exactly jsonSize bytes. It compresses
// like an ordinary API answer (about 4:1 with gzip), not like a repeated
// string.
func jsonBody() []byte {
	r := mrand.New(mrand.NewPCG(1, 2))
	words := strings.Fields("blue red green ceramic steel oak linen wool mug lamp chair table shelf rug " +
		"kettle bowl vase clock mirror desk stool basket towel pillow candle frame jar tray")
	cats := []string{"kitchen", "living", "office", "bath", "garden", "gift"}
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	const tail = `],"cursor":""}`
	for i := 0; ; i++ {
		item, _ := json.Marshal(map[string]any{
			"id":       100000 + r.IntN(900000),
			"sku":      fmt.Sprintf("SKU-%04d-%c%c", r.IntN(10000), 'A'+r.IntN(26), 'A'+r.IntN(26)),
			"name":     words[r.IntN(len(words))] + " " + words[r.IntN(len(words))] + " " + words[r.IntN(len(words))],
			"price":    float64(r.IntN(20000)) / 100,
			"currency": "EUR",
			"stock":    r.IntN(500),
			"tags":     []string{cats[r.IntN(len(cats))], cats[r.IntN(len(cats))]},
			"updated":  time.Date(2026, 11, 1+r.IntN(29), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC).Format(time.RFC3339),
		})
		if b.Len()+1+len(item)+len(tail) > jsonSize {
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(item)
	}
	b.WriteString(`],"cursor":"`)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for b.Len() < jsonSize-2 {
		b.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	b.WriteString(`"}`)
	return b.Bytes()
}

// serveFilterBackend is the filter scenarios' backend: paths ending in
// .json get the JSON document (application/json), paths containing
// "cacheable" also Cache-Control: public, max-age=300, any other path 64
// bytes of text/plain as the demo backend's. /count is the number of
// requests served (other than /health and /count).
func serveFilterBackend(addr string) error {
	body := jsonBody()
	if len(body) != jsonSize || !json.Valid(body) {
		return fmt.Errorf("json body: %d bytes, valid %v", len(body), json.Valid(body))
	}
	jsonLen := strconv.Itoa(len(body))
	small := bytes.Repeat([]byte("x"), 64)
	var count atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, count.Load())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		h := w.Header()
		if strings.HasSuffix(r.URL.Path, ".json") {
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{jsonLen}
			if strings.Contains(r.URL.Path, "cacheable") {
				h["Cache-Control"] = []string{"public, max-age=300"}
			}
			w.Write(body)
			return
		}
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{"64"}
		w.Write(small)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

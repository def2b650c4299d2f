package cache

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// step is one request of a scenario and what must come of it.
type step struct {
	advance  time.Duration // clock moves before the request
	method   string        // default GET
	path     string        // default /r
	header   []string
	xcache   string
	upstream int32 // the upstream's request count after it
	status   int   // 0: 200
	check    func(t *testing.T, r result)
}

// TestRFC9111 drives scenarios against a real upstream whose answer the
// scenario's handler shapes.
func TestRFC9111(t *testing.T) {
	hdr := func(pairs ...string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(pairs); i += 2 {
				w.Header().Add(pairs[i], pairs[i+1])
			}
			fmt.Fprintf(w, "body %s %s", r.URL.RequestURI(), r.Header.Get("Accept-Language"))
		}
	}
	ageIs := func(want string) func(*testing.T, result) {
		return func(t *testing.T, r result) {
			if got := r.header.Get("Age"); got != want {
				t.Errorf("Age: got %q, want %q", got, want)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		steps   []step
	}{
		{"max-age fresh then stale", hdr("Cache-Control", "max-age=60"), []step{
			{xcache: "MISS", upstream: 1},
			{advance: 10 * time.Second, xcache: "HIT", upstream: 1, check: ageIs("10")},
			{advance: 50 * time.Second, xcache: "MISS", upstream: 2}, // age 60 = lifetime: stale
		}},
		{"s-maxage over max-age", hdr("Cache-Control", "max-age=0, s-maxage=60"), []step{
			{xcache: "MISS", upstream: 1},
			{advance: 30 * time.Second, xcache: "HIT", upstream: 1},
		}},
		{"Expires minus Date", func(w http.ResponseWriter, r *http.Request) {
			d, _ := http.ParseTime(w.Header().Get("Date"))
			w.Header().Set("Expires", d.Add(time.Minute).Format(http.TimeFormat))
			w.Write([]byte("x"))
		}, []step{
			{xcache: "MISS", upstream: 1},
			{advance: 59 * time.Second, xcache: "HIT", upstream: 1},
			{advance: 2 * time.Second, xcache: "MISS", upstream: 2},
		}},
		{"invalid Expires is stale", hdr("Expires", "0"), []step{
			{xcache: "MISS", upstream: 1},
			{xcache: "MISS", upstream: 2},
		}},
		{"Age from upstream counts", hdr("Cache-Control", "max-age=60", "Age", "50"), []step{
			{xcache: "MISS", upstream: 1},
			{advance: 5 * time.Second, xcache: "HIT", upstream: 1, check: ageIs("55")},
			{advance: 5 * time.Second, xcache: "MISS", upstream: 2},
		}},
		{"no-store", hdr("Cache-Control", "no-store, max-age=60"), []step{
			{xcache: "MISS", upstream: 1}, {xcache: "MISS", upstream: 2},
		}},
		{"private", hdr("Cache-Control", "private, max-age=60"), []step{
			{xcache: "MISS", upstream: 1}, {xcache: "MISS", upstream: 2},
		}},
		{"qualified private is private", hdr("Cache-Control", `private="X-User", max-age=60`), []step{
			{xcache: "MISS", upstream: 1}, {xcache: "MISS", upstream: 2},
		}},
		{"no heuristic freshness", hdr("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT"), []step{
			{xcache: "MISS", upstream: 1}, {xcache: "MISS", upstream: 2},
		}},
		{"Set-Cookie not stored", hdr("Cache-Control", "max-age=60", "Set-Cookie", "s=1"), []step{
			{xcache: "MISS", upstream: 1}, {xcache: "MISS", upstream: 2},
		}},
		{"Authorization without public", hdr("Cache-Control", "max-age=60"), []step{
			{header: []string{"Authorization", "Bearer a"}, xcache: "MISS", upstream: 1},
			{xcache: "MISS", upstream: 2},
			{xcache: "HIT", upstream: 2},
		}},
		{"Authorization with public", hdr("Cache-Control", "public, max-age=60"), []step{
			{header: []string{"Authorization", "Bearer a"}, xcache: "MISS", upstream: 1},
			{xcache: "HIT", upstream: 1},
		}},
		{"Authorization with s-maxage", hdr("Cache-Control", "s-maxage=60"), []step{
			{header: []string{"Authorization", "Bearer a"}, xcache: "MISS", upstream: 1},
			{xcache: "HIT", upstream: 1},
		}},
		{"Vary selects variants", hdr("Cache-Control", "max-age=60", "Vary", "Accept-Language"), []step{
			{header: []string{"Accept-Language", "en"}, xcache: "MISS", upstream: 1},
			{header: []string{"Accept-Language", "fr"}, xcache: "MISS", upstream: 2},
			{header: []string{"Accept-Language", "en"}, xcache: "HIT", upstream: 2, check: func(t *testing.T, r result) {
				if r.body != "body /r en" {
					t.Errorf("body: got %q, want the en variant", r.body)
				}
			}},
			{header: []string{"Accept-Language", "fr"}, xcache: "HIT", upstream: 2},
			{xcache: "MISS", upstream: 3},
		}},
		{"Vary star never served", hdr("Cache-Control", "max-age=60", "Vary", "*"), []step{
			{xcache: "MISS", upstream: 1}, {xcache: "MISS", upstream: 2},
		}},
		{"huge Vary not stored", hdr("Cache-Control", "max-age=60", "Vary", "A,B,C,D,E,F,G,H,I"), []step{
			{xcache: "MISS", upstream: 1}, {xcache: "MISS", upstream: 2},
		}},
		{"query is part of the key", hdr("Cache-Control", "max-age=60"), []step{
			{path: "/r?a=1", xcache: "MISS", upstream: 1},
			{path: "/r?a=2", xcache: "MISS", upstream: 2},
			{path: "/r?a=1", xcache: "HIT", upstream: 2},
		}},
		{"host is part of the key", hdr("Cache-Control", "max-age=60"), []step{
			{header: []string{"Host", "a.test"}, xcache: "MISS", upstream: 1},
			{header: []string{"Host", "b.test"}, xcache: "MISS", upstream: 2},
			{header: []string{"Host", "A.TEST"}, xcache: "HIT", upstream: 2},
		}},
		{"status 404 with max-age stored", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.WriteHeader(404)
		}, []step{
			{status: 404, xcache: "MISS", upstream: 1}, {status: 404, xcache: "HIT", upstream: 1},
		}},
		{"206 not stored", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Range", "bytes 0-0/10")
			w.WriteHeader(206)
			w.Write([]byte("x"))
		}, []step{
			{status: 206, xcache: "MISS", upstream: 1}, {status: 206, xcache: "MISS", upstream: 2},
		}},
		{"HEAD served from a stored GET", hdr("Cache-Control", "max-age=60"), []step{
			{method: "HEAD", xcache: "BYPASS", upstream: 1},
			{xcache: "MISS", upstream: 2},
			{method: "HEAD", xcache: "HIT", upstream: 2, check: func(t *testing.T, r result) {
				if r.body != "" || r.header.Get("Content-Length") != strconv.Itoa(len("body /r ")) {
					t.Errorf("HEAD hit: body %q, Content-Length %q", r.body, r.header.Get("Content-Length"))
				}
			}},
		}},
		{"client conditional on a hit", hdr("Cache-Control", "max-age=60", "ETag", `"v1"`), []step{
			{xcache: "MISS", upstream: 1},
			{header: []string{"If-None-Match", `W/"v1"`}, status: 304, xcache: "HIT", upstream: 1, check: func(t *testing.T, r result) {
				if r.header.Get("ETag") != `"v1"` || r.body != "" {
					t.Errorf("304: ETag %q, body %q", r.header.Get("ETag"), r.body)
				}
			}},
			{header: []string{"If-None-Match", `"v2"`}, xcache: "HIT", upstream: 1},
		}},
		{"only-if-cached miss", hdr("Cache-Control", "max-age=60"), []step{
			{header: []string{"Cache-Control", "only-if-cached"}, status: 504, xcache: "MISS", upstream: 0},
			{xcache: "MISS", upstream: 1},
			{header: []string{"Cache-Control", "only-if-cached"}, xcache: "HIT", upstream: 1},
		}},
		{"request no-store", hdr("Cache-Control", "max-age=60"), []step{
			{header: []string{"Cache-Control", "no-store"}, xcache: "MISS", upstream: 1},
			{xcache: "MISS", upstream: 2},
		}},
		{"unkeyed X-Forwarded-Host cannot poison", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			host := r.Header.Get("X-Forwarded-Host")
			if host == "" {
				host = r.Host
			}
			fmt.Fprintf(w, `<script src="//%s/app.js">`, host)
		}, []step{
			{header: []string{"Host", "shop.test", "X-Forwarded-Host", "evil.test"}, xcache: "MISS", upstream: 1},
			{header: []string{"Host", "shop.test"}, xcache: "MISS", upstream: 2, check: func(t *testing.T, r result) {
				if strings.Contains(r.body, "evil") {
					t.Errorf("poisoned: %q", r.body)
				}
			}},
			{header: []string{"Host", "shop.test"}, xcache: "HIT", upstream: 2, check: func(t *testing.T, r result) {
				if strings.Contains(r.body, "evil") {
					t.Errorf("poisoned: %q", r.body)
				}
			}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConfig(), Deps{}, tc.handler)
			for i, s := range tc.steps {
				e.clock.advance(s.advance)
				method, path := s.method, s.path
				if method == "" {
					method = "GET"
				}
				if path == "" {
					path = "/r"
				}
				r := e.do(method, path, s.header...)
				want := s.status
				if want == 0 {
					want = 200
				}
				if r.status != want {
					t.Errorf("step %d: status %d, want %d", i, r.status, want)
				}
				e.expect(r, s.xcache, s.upstream)
				if s.check != nil {
					s.check(t, r)
				}
				if t.Failed() {
					t.Fatalf("step %d failed", i)
				}
			}
		})
	}
}

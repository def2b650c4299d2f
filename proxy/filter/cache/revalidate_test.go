package cache

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRevalidation304Merges: a stale stored response is revalidated with
// its validators; the upstream's 304 updates the stored head (RFC 9111
// §4.3.4) and the client gets the stored body.
func TestRevalidation304Merges(t *testing.T) {
	var gen atomic.Int32
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.Header().Set("Cache-Control", "max-age=120")
			w.Header().Set("X-Gen", fmt.Sprint(gen.Add(1)))
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("X-Gen", "0")
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("the body"))
	})
	e.expect(e.do("GET", "/r"), "MISS", 1)
	e.clock.advance(11 * time.Second)
	r := e.do("GET", "/r")
	e.expect(r, "REVALIDATED", 2)
	if r.status != 200 || r.body != "the body" || r.header.Get("X-Gen") != "1" || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("revalidated answer: %d %q X-Gen %q type %q", r.status, r.body, r.header.Get("X-Gen"), r.header.Get("Content-Type"))
	}
	if r.header.Get("Age") != "0" {
		t.Errorf("Age after revalidation: got %q, want 0", r.header.Get("Age"))
	}
	// The 304's max-age=120 now rules.
	e.clock.advance(100 * time.Second)
	r = e.do("GET", "/r")
	e.expect(r, "HIT", 2)
	if r.header.Get("X-Gen") != "1" || len(r.header.Values("Cache-Control")) != 1 {
		t.Errorf("merged head: X-Gen %q, Cache-Control %q", r.header.Get("X-Gen"), r.header.Values("Cache-Control"))
	}
	if s := e.f.Stats(); s.Revalidated != 1 || s.Hits != 1 || s.Misses != 2 {
		t.Errorf("stats: %+v", s)
	}
}

// TestNoCacheRevalidatesEveryTime: no-cache stores but never serves
// without a successful validation.
func TestNoCacheRevalidatesEveryTime(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache, max-age=600")
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		if r.Header.Get("If-Modified-Since") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("x"))
	})
	e.expect(e.do("GET", "/r"), "MISS", 1)
	e.expect(e.do("GET", "/r"), "REVALIDATED", 2)
	e.expect(e.do("GET", "/r"), "REVALIDATED", 3)
}

// TestClientConditionalPassesThrough: the client's own validators go
// upstream as they are, and its 304 reaches the client.
func TestClientConditionalPassesThrough(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte("x"))
	})
	e.expect(e.do("GET", "/r"), "MISS", 1)
	e.clock.advance(20 * time.Second)
	r := e.do("GET", "/r", "If-None-Match", `"v1"`)
	if r.status != 304 {
		t.Errorf("got %d, want the upstream's 304", r.status)
	}
}

// TestStaleIfError: a stale response stands in for a 5xx or an
// unreachable upstream while stale-if-error allows, never with
// must-revalidate.
func TestStaleIfError(t *testing.T) {
	for _, tc := range []struct {
		name, cc string
		down     bool // the upstream is gone rather than failing
		want     string
		status   int
	}{
		{"5xx within window", "max-age=10, stale-if-error=60", false, "STALE", 200},
		{"unreachable within window", "max-age=10, stale-if-error=60", true, "STALE", 200},
		{"must-revalidate", "max-age=10, stale-if-error=60, must-revalidate", false, "MISS", 503},
		{"no stale-if-error", "max-age=10", false, "MISS", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failing atomic.Bool
			e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
				if failing.Load() {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				w.Header().Set("Cache-Control", tc.cc)
				w.Write([]byte("good"))
			})
			e.expect(e.do("GET", "/r"), "MISS", 1)
			failing.Store(true)
			if tc.down {
				e.up.Close()
			}
			e.clock.advance(30 * time.Second)
			r := e.do("GET", "/r")
			if tc.down {
				if r.header.Get("X-Cache") != tc.want || r.body != "good" {
					t.Errorf("got %d %q X-Cache %q, want the stale body", r.status, r.body, r.header.Get("X-Cache"))
				}
				return
			}
			e.expect(r, tc.want, 2)
			if r.status != tc.status {
				t.Errorf("status: got %d, want %d", r.status, tc.status)
			}
			if tc.want == "STALE" && (r.body != "good" || r.header.Get("Age") != "30") {
				t.Errorf("stale answer: %q Age %q", r.body, r.header.Get("Age"))
			}
			// Beyond the window the error goes through.
			e.clock.advance(61 * time.Second)
			if r := e.do("GET", "/r"); r.status != http.StatusServiceUnavailable {
				t.Errorf("beyond stale-if-error: got %d, want 503", r.status)
			}
		})
	}
}

// TestStaleWhileRevalidate: while one request revalidates a stale
// response, the others get it stale at once (nginx's proxy_cache_use_stale
// updating).
func TestStaleWhileRevalidate(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=60")
		if n.Add(1) == 2 {
			<-release // the revalidation hangs until the stale answer was seen
		}
		fmt.Fprintf(w, "v%d", n.Load())
	})
	e.expect(e.do("GET", "/r"), "MISS", 1)
	e.clock.advance(20 * time.Second)
	var wg sync.WaitGroup
	var first result
	wg.Add(1)
	go func() {
		defer wg.Done()
		first = e.do("GET", "/r")
	}()
	waitFor(t, "the revalidation to reach the upstream", func() bool { return n.Load() == 2 })
	r := e.do("GET", "/r")
	if r.header.Get("X-Cache") != "STALE" || r.body != "v1" {
		t.Errorf("during revalidation: got %q %q, want STALE v1", r.header.Get("X-Cache"), r.body)
	}
	close(release)
	wg.Wait()
	if first.header.Get("X-Cache") != "MISS" || first.body != "v2" {
		t.Errorf("revalidating request: got %q %q, want MISS v2", first.header.Get("X-Cache"), first.body)
	}
	e.expect(e.do("GET", "/r"), "HIT", 2)
	// Beyond the window nothing stale is served.
	e.clock.advance(100 * time.Second)
	e.expect(e.do("GET", "/r"), "MISS", 3)
}

// TestInvalidation: a successful unsafe request removes the stored
// responses of its URI and of its Location and Content-Location on the
// same host (RFC 9111 §4.4); a failed one does not.
func TestInvalidation(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET":
			w.Header().Set("Cache-Control", "max-age=600")
		case r.URL.Path == "/fail":
			w.WriteHeader(500)
			return
		case r.URL.Path == "/orders":
			w.Header().Set("Location", "/orders/7")
			w.Header().Set("Content-Location", "http://other.test/r")
			w.WriteHeader(201)
			return
		}
		w.Write([]byte("ok"))
	})
	for _, p := range []string{"/r", "/orders", "/orders/7", "/fail"} {
		e.do("GET", p)
	}
	e.expect(e.do("GET", "/r"), "HIT", 4)
	e.expect(e.do("POST", "/fail"), "BYPASS", 5)
	e.expect(e.do("GET", "/fail"), "HIT", 5)
	e.expect(e.do("DELETE", "/r"), "BYPASS", 6)
	e.expect(e.do("GET", "/r"), "MISS", 7)
	e.expect(e.do("POST", "/orders"), "BYPASS", 8)
	e.expect(e.do("GET", "/orders"), "MISS", 9)
	e.expect(e.do("GET", "/orders/7"), "MISS", 10)
	e.expect(e.do("GET", "/r"), "HIT", 10) // Content-Location on another host: left alone
	// Purge by prefix and by URL.
	host := strings.TrimPrefix(e.front.URL, "http://")
	if n, err := e.f.Purge(t.Context(), host, "/orders", "", true); err != nil || n != 2 {
		t.Errorf("purge prefix: got %d, %v; want 2", n, err)
	}
	if n, _ := e.f.Purge(t.Context(), host, "/r", "", false); n != 1 {
		t.Errorf("purge url: got %d, want 1", n)
	}
	e.expect(e.do("GET", "/r"), "MISS", 11)
}

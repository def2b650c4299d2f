package proxy

import (
	"bufio"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/cache"
	"github.com/ferry-proxy/ferry/proxy/filter/compress"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// The real compress and cache filters through the core, in both lanes
// (TestMain runs each test in each): the lazy head, body filters, response
// replacement and Finish (filter/extra.go) as the front-ends implement them.

func compressCacheChain(t *testing.T, now func() time.Time) *filter.Chain {
	t.Helper()
	c, err := cache.New(config.Cache{MaxBytes: 1 << 20, MaxObjectBytes: 1 << 16, Store: config.CacheStoreMemory,
		CollapseTimeout: time.Second}, cache.Deps{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	z, err := compress.New(config.Compress{Encodings: []string{"gzip"}, MinBytes: 100, Types: []string{"text/*"}})
	if err != nil {
		t.Fatal(err)
	}
	return filter.NewChain([]string{"cache", "compress"}, []any{c, z}) // the cache stores what clients get
}

// rawGetWith sends GET path with the given header lines on a new connection and
// returns the response with its body read raw (not decoded).
func rawGetWith(t *testing.T, f *fixture, path string, lines ...string) (*http.Response, string) {
	t.Helper()
	c := f.dial()
	io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+strings.Join(lines, "")+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp, string(body)
}

func gunzip(t *testing.T, s string) string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(s))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip: %v", err)
	}
	return string(b)
}

func TestCompressAndCacheThroughTheCore(t *testing.T) {
	text := strings.Repeat("ferry compresses text. ", 200)
	var calls atomic.Int32
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("ETag", `"v1"`)
			io.WriteString(w, text)
		case "/stream": // chunked, flushed in parts
			w.Header().Set("Content-Type", "text/plain")
			for range 4 {
				io.WriteString(w, text[:1000])
				w.(http.Flusher).Flush()
			}
		case "/small":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "tiny")
		}
	})
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s", Filters: compressCacheChain(t, nil)}}, nil,
		setOf(t, "s", addr(b)))

	resp, body := rawGetWith(t, f, "/page", "Accept-Encoding: gzip\r\n")
	if resp.Header.Get("Content-Encoding") != "gzip" || gunzip(t, body) != text || resp.Header.Get("ETag") != `W/"v1"` ||
		!strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("compressed: %v, %d bytes", resp.Header, len(body))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for a %d-byte body", resp.ContentLength, len(body))
	}
	// A second request is a cache hit: the upstream is not called.
	resp, body = rawGetWith(t, f, "/page", "Accept-Encoding: gzip\r\n")
	if calls.Load() != 1 || resp.Header.Get("X-Cache") != "HIT" || gunzip(t, body) != text || resp.Header.Get("Age") == "" {
		t.Errorf("second request: %d upstream calls, X-Cache %q Age %q", calls.Load(), resp.Header.Get("X-Cache"), resp.Header.Get("Age"))
	}
	// Without Accept-Encoding: another variant, identity.
	resp, body = rawGetWith(t, f, "/page")
	if body != text || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("identity variant: %q %d bytes", resp.Header.Get("Content-Encoding"), len(body))
	}
	// A streamed (chunked) body is compressed as it comes.
	resp, body = rawGetWith(t, f, "/stream", "Accept-Encoding: gzip\r\n")
	if resp.Header.Get("Content-Encoding") != "gzip" || gunzip(t, body) != strings.Repeat(text[:1000], 4) {
		t.Errorf("stream: %v", resp.Header)
	}
	// Below min_bytes: sent as it is, with its length.
	resp, body = rawGetWith(t, f, "/small", "Accept-Encoding: gzip\r\n")
	if body != "tiny" || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("small: %q %v", body, resp.Header)
	}
	// HEAD of a cached object: the head, no body.
	c := f.dial()
	io.WriteString(c, "HEAD /page HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\nGET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	if err != nil || head.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", head, err)
	}
	head.Body.Close()
	next, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request after a HEAD on the same connection: %v", err)
	}
	if b, _ := io.ReadAll(next.Body); string(b) != "tiny" {
		t.Errorf("after HEAD: %q: the connection is out of step", b)
	}
}

// TestCacheStandsInForAnUnreachableUpstream: a stale stored response with
// stale-if-error answers instead of ferry's 502 when the upstream is gone
// (Chain.Replace on the core's own error answer).
func TestCacheStandsInForAnUnreachableUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		io.WriteString(w, `{"stock":3}`)
	})}
	go srv.Serve(ln)
	var clock atomic.Int64 // the cache's clock, moved by the test
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s", Filters: compressCacheChain(t, now)}},
		map[string]route.ServiceSpec{"s": {Retries: 0}}, setOf(t, "s", ln.Addr().String()))
	if _, body := rawGetWith(t, f, "/stock"); body != `{"stock":3}` {
		t.Fatalf("first: %q", body)
	}
	srv.Close()                        // the upstream is gone: connections refused
	clock.Add(int64(30 * time.Second)) // stale: past max-age, within stale-if-error
	resp, body := rawGetWith(t, f, "/stock")
	if resp.StatusCode != 200 || body != `{"stock":3}` || resp.Header.Get("X-Cache") != "STALE" {
		t.Errorf("with the upstream gone: %d %q X-Cache %q, want the stale response", resp.StatusCode, body, resp.Header.Get("X-Cache"))
	}
}

// TestCacheRevalidatesWithA304: a stale stored response is revalidated; the
// upstream's 304 is replaced by the stored response (Chain.Replace on the
// upstream's head), and its body is never read.
func TestCacheRevalidatesWithA304(t *testing.T) {
	var calls, notModified atomic.Int32
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header()["Date"] = nil // the cache's clock is the test's: a real Date would age the entry
		if r.Header.Get("If-None-Match") == `"v7"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v7"`)
		io.WriteString(w, `{"v":7}`)
	})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s", Filters: compressCacheChain(t, now)}}, nil,
		setOf(t, "s", addr(b)))
	rawGetWith(t, f, "/v")
	clock.Add(int64(30 * time.Second))
	resp, body := rawGetWith(t, f, "/v")
	if body != `{"v":7}` || resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "REVALIDATED" || notModified.Load() != 1 {
		t.Errorf("revalidated: %d %q X-Cache %q, %d upstream 304s", resp.StatusCode, body, resp.Header.Get("X-Cache"), notModified.Load())
	}
	// Fresh again: no upstream call.
	if _, body := rawGetWith(t, f, "/v"); body != `{"v":7}` || calls.Load() != 2 {
		t.Errorf("after revalidation: %q, %d upstream calls, want 2", body, calls.Load())
	}
}

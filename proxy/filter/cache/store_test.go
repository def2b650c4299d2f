package cache

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCollapsing: concurrent misses for one object make one upstream
// request; the others are answered from what it stored.
func TestCollapsing(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Write([]byte("shared"))
	})
	const n = 5
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.do("GET", "/r")
		}()
	}
	waitFor(t, "4 requests waiting", func() bool { return e.f.Stats().Collapsed == n-1 })
	close(release)
	wg.Wait()
	hits := 0
	for _, r := range results {
		if r.body != "shared" {
			t.Errorf("got %q", r.body)
		}
		if r.header.Get("X-Cache") == "HIT" {
			hits++
		}
	}
	if hits != n-1 || e.upstream.Load() != 1 {
		t.Errorf("got %d hits and %d upstream requests, want %d and 1", hits, e.upstream.Load(), n-1)
	}
}

// TestCollapseTimeout: a waiter whose leader takes longer than the
// timeout goes upstream itself.
func TestCollapseTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.CollapseTimeout = 20 * time.Millisecond
	release := make(chan struct{})
	var n atomic.Int32
	e := newEnv(t, cfg, Deps{}, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-release // the leader hangs
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("x"))
	})
	done := make(chan result)
	go func() { done <- e.do("GET", "/r") }()
	waitFor(t, "the leader upstream", func() bool { return n.Load() == 1 })
	r := e.do("GET", "/r") // returns while the leader still hangs
	e.expect(r, "MISS", 2)
	close(release)
	<-done
}

// TestUncacheableReleasesWaiters: when the leader's response cannot be
// stored, the waiters go upstream at once, each on its own.
func TestUncacheableReleasesWaiters(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("x"))
	})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); e.do("GET", "/r") }()
	}
	waitFor(t, "2 waiters", func() bool { return e.f.Stats().Collapsed == 2 })
	close(release)
	wg.Wait()
	if got := e.upstream.Load(); got != 3 {
		t.Errorf("upstream requests: got %d, want 3", got)
	}
}

// TestObjectLimit: a body over max_object_bytes streams through whole and
// is not stored.
func TestObjectLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxObjectBytes = 1000
	big := strings.Repeat("b", 5000)
	e := newEnv(t, cfg, Deps{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/big" {
			w.Write([]byte(big))
			return
		}
		w.Write([]byte("small"))
	})
	r := e.do("GET", "/big")
	if r.body != big {
		t.Fatalf("got %d bytes, want %d", len(r.body), len(big))
	}
	e.expect(e.do("GET", "/big"), "MISS", 2)
	e.do("GET", "/small")
	e.expect(e.do("GET", "/small"), "HIT", 3)
}

// TestCutOffBodyNotStored: a body the upstream cuts off is never stored.
func TestCutOffBodyNotStored(t *testing.T) {
	var n atomic.Int32
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if n.Add(1) == 1 {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			w.Write([]byte(strings.Repeat("x", 500)))
			w.(http.Flusher).Flush()
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err == nil {
				buf.Flush()
				conn.Close()
			}
			return
		}
		w.Write([]byte("whole"))
	})
	if r := e.do("GET", "/r"); r.err == nil {
		t.Errorf("a cut-off body reached the client as complete: %d bytes", len(r.body))
	}
	r := e.do("GET", "/r")
	e.expect(r, "MISS", 2)
	if r.body != "whole" {
		t.Errorf("got %q", r.body)
	}
	if s := e.f.Stats(); s.Stored != 1 {
		t.Errorf("stored %d objects, want only the whole one", s.Stored)
	}
}

// TestLRUBySize: the memory tier stays within max_bytes, evicting the
// least recently used.
func TestLRUBySize(t *testing.T) {
	m := newMemory(3000)
	obj := func(n int) *object { return &object{status: 200, body: bytes.Repeat([]byte("x"), n)} }
	k := func(s string) key { return key{url: "h\x00/" + s + "?", rest: "api"} }
	m.put(k("a"), obj(800))
	m.put(k("b"), obj(800))
	m.put(k("c"), obj(800))
	if m.get(k("a").primary(), "") == nil { // a is now the most recent
		t.Fatal("a missing")
	}
	if ev := m.put(k("d"), obj(800)); ev != 1 {
		t.Errorf("evicted %d, want 1", ev)
	}
	if m.get(k("b").primary(), "") != nil {
		t.Error("b, the least recently used, was kept")
	}
	for _, s := range []string{"a", "c", "d"} {
		if m.get(k(s).primary(), "") == nil {
			t.Errorf("%s evicted", s)
		}
	}
	size, objects, evictions := m.usage()
	if size > 3000 || objects != 3 || evictions != 1 {
		t.Errorf("usage: %d bytes, %d objects, %d evictions", size, objects, evictions)
	}
	if ev := m.put(k("huge"), obj(5000)); ev != 0 || m.get(k("huge").primary(), "") != nil {
		t.Error("an object larger than the tier was stored")
	}
	// A new Vary replaces every variant of a resource.
	v := obj(10)
	v.vary, v.varyKey = []string{"accept-language"}, "accept-language:en\n"
	m.put(k("a"), v)
	if m.get(k("a").primary(), "") != nil || m.get(k("a").primary(), v.varyKey) == nil {
		t.Error("the old variant survived a Vary change")
	}
	if n := m.invalidate(k("a").url, false); n != 1 {
		t.Errorf("invalidate: %d, want 1", n)
	}
	if size, objects, _ := m.usage(); objects != 2 || size != obj(800).size()*2 {
		t.Errorf("after invalidation: %d bytes, %d objects", size, objects)
	}
}

// TestEvictionsThroughFilter: stats count evictions and bytes.
func TestEvictionsThroughFilter(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBytes, cfg.MaxObjectBytes = 2500, 2000
	e := newEnv(t, cfg, Deps{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write(bytes.Repeat([]byte("x"), 1000))
	})
	for i := range 4 {
		e.do("GET", fmt.Sprintf("/%d", i))
	}
	s := e.f.Stats()
	if s.Evictions != 2 || s.Objects != 2 || s.Bytes > 2500 || s.Stored != 4 {
		t.Errorf("stats: %+v", s)
	}
}

func TestEncodeDecode(t *testing.T) {
	o := &object{status: 200, header: [][2]string{{"Cache-Control", "max-age=60"}, {"ETag", `"x"`}},
		body: []byte("body"), vary: []string{"accept-encoding"}, varyKey: "accept-encoding:gzip\n"}
	o.fresh = freshness{requestTime: time.Unix(100, 5), responseTime: time.Unix(101, 7), ageValue: 3 * time.Second}
	o.derive()
	b := o.encode()
	got, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.status != 200 || string(got.body) != "body" || got.varyKey != o.varyKey || len(got.header) != 2 ||
		!got.fresh.responseTime.Equal(o.fresh.responseTime) || got.fresh.lifetime != time.Minute || got.vary[0] != "accept-encoding" {
		t.Errorf("round trip: got %+v", got)
	}
	// Every truncation and corruption is an error, never a panic.
	for i := range b {
		if _, err := decode(b[:i]); err == nil {
			t.Errorf("truncated at %d: decoded", i)
		}
	}
	sc := bufio.NewScanner(strings.NewReader("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\n\x02\n\x01\x00\x00\x00\xff\xff\xff\xff\x0f"))
	for sc.Scan() {
		decode(sc.Bytes())
	}
}

func FuzzDecode(f *testing.F) {
	o := &object{status: 200, header: [][2]string{{"A", "b"}}, body: []byte("x")}
	f.Add(o.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if o, err := decode(b); err == nil {
			decode(o.encode())
		}
	})
}

// TestFailedLeaderReleasesWaiters: a leader whose upstream exchange fails
// (no response at all) releases the waiters through Finish; they go
// upstream themselves at once rather than after the collapse timeout.
func TestFailedLeaderReleasesWaiters(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int32
	e := newEnv(t, testConfig(), Deps{}, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-release
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // no response: the core answers 502
			}
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("ok"))
	})
	var wg sync.WaitGroup
	results := make([]result, 3)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = e.do("GET", "/r") }()
	}
	waitFor(t, "2 waiters", func() bool { return e.f.Stats().Collapsed == 2 })
	close(release)
	wg.Wait() // collapse_timeout is a minute: only Finish can have released them
	var bad, good int
	for _, r := range results {
		switch r.status {
		case 502:
			bad++
		case 200:
			good++
		}
	}
	if bad != 1 || good != 2 {
		t.Errorf("got %d 502 and %d 200, want 1 and 2", bad, good)
	}
}

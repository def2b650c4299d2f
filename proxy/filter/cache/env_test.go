package cache

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/fakecore"
)

// clock is a settable time for freshness tests: the cache and the
// upstream's Date both read it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a cache in front of a real upstream, through the test core.
type env struct {
	t        *testing.T
	clock    *clock
	f        *Filter
	up       *httptest.Server
	front    *httptest.Server
	upstream atomic.Int32 // requests the upstream received
	client   *http.Client
}

func testConfig() config.Cache {
	return config.Cache{MaxBytes: 1 << 20, MaxObjectBytes: 64 << 10, Store: "memory", CollapseTimeout: time.Minute}
}

// newEnv serves handler as the upstream; the handler gets the clock's
// Date unless it sets its own.
func newEnv(t *testing.T, cfg config.Cache, deps Deps, handler http.HandlerFunc) *env {
	t.Helper()
	e := &env{t: t, clock: newClock()}
	if deps.Now == nil {
		deps.Now = e.clock.Now
	}
	f, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.f = f
	e.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.upstream.Add(1)
		w.Header().Set("Date", e.clock.Now().UTC().Format(http.TimeFormat))
		handler(w, r)
	}))
	t.Cleanup(e.up.Close)
	e.front = frontFor(t, f, e.up.URL)
	tr := &http.Transport{DisableCompression: true}
	e.client = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return e
}

// frontFor serves the cache in front of upstream through the test core.
func frontFor(t *testing.T, f *Filter, upstream string) *httptest.Server {
	core := &fakecore.Core{Chain: filter.NewChain([]string{"cache"}, []any{f}), Upstream: upstream, Route: "api"}
	front := httptest.NewServer(core)
	t.Cleanup(front.Close)
	return front
}

type result struct {
	status int
	header http.Header
	body   string
	err    error
}

// do sends a request with header pairs and reads the whole answer.
func (e *env) do(method, path string, header ...string) result {
	e.t.Helper()
	return doOn(e.t, e.client, e.front.URL, method, path, header...)
}

func doOn(t *testing.T, c *http.Client, base, method, path string, header ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

// expect checks an answer's X-Cache and the upstream's request count.
func (e *env) expect(r result, xcache string, upstream int32) {
	e.t.Helper()
	if r.err != nil {
		e.t.Fatalf("request failed: %v", r.err)
	}
	if got := r.header.Get("X-Cache"); got != xcache {
		e.t.Errorf("X-Cache: got %q, want %q (status %d)", got, xcache, r.status)
	}
	if got := e.upstream.Load(); got != upstream {
		e.t.Errorf("upstream requests: got %d, want %d", got, upstream)
	}
}

// waitFor polls cond; a deadline only bounds a failing test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

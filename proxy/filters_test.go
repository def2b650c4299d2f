package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// The core's filter places (SPEC §13), through both front-ends (TestMain
// runs every test in each lane): request filters that answer or edit the
// upstream request, response filters that edit the head, body filters that
// rewrite the body. The filters here are small test filters; the real ones
// (jwt, rate_limit, headers, compress, cache) are tested in their packages.

// gateFilter answers 401 unless the request carries X-Key: open, and tells
// later filters it ran.
type gateFilter struct{}

func (gateFilter) Request(_ context.Context, r filter.Request) *filter.Answer {
	if r.Header("X-Key") != "open" {
		return &filter.Answer{Status: http.StatusUnauthorized,
			Header: [][2]string{{"WWW-Authenticate", `Bearer error="invalid_token"`}, {"Content-Type", "text/plain"},
				{"X-Evil", "a\r\nInjected: 1"}},
			Body: []byte("no key\n")}
	}
	r.Set("gate", "passed:"+r.Route()+":"+r.Path())
	return nil
}

// editFilter edits the upstream request and the response head.
type editFilter struct{}

func (editFilter) Request(_ context.Context, r filter.Request) *filter.Answer {
	r.SetHeader("X-Env", "prod")
	r.DelHeader("X-Debug")
	r.AddHeader("X-Seen", "1")
	r.AddHeader("X-Seen", "2")
	r.SetHeader("X-Gate", r.Value("gate").(string))
	r.SetHeader("X-Bad", "a\r\nInjected: 1") // never written
	return nil
}

func (editFilter) Response(r filter.Request, w filter.Response) {
	w.SetHeader("Strict-Transport-Security", "max-age=63072000")
	w.DelHeader("X-Powered-By")
	w.SetHeader("X-Upstream-Type", w.Header("Content-Type"))
}

// upperFilter upper-cases the body, so its length may change: it drops
// Content-Length and the front-end frames the body itself.
type upperFilter struct{ flushes *atomic.Int32 }

func (u upperFilter) Body(r filter.Request, w filter.Response, dst io.Writer) filter.BodyWriter {
	if !strings.HasPrefix(w.Header("Content-Type"), "text/") {
		return nil
	}
	w.DelHeader("Content-Length")
	w.SetHeader("X-Upper", "1")
	return &upperWriter{dst: dst, flushes: u.flushes}
}

type upperWriter struct {
	dst     io.Writer
	flushes *atomic.Int32
	buf     []byte
}

func (u *upperWriter) Write(p []byte) (int, error) {
	u.buf = append(u.buf, bytes.ToUpper(p)...)
	if len(u.buf) >= 4096 {
		return len(p), u.Flush()
	}
	return len(p), nil
}

func (u *upperWriter) Flush() error {
	u.flushes.Add(1)
	if len(u.buf) == 0 {
		return nil
	}
	_, err := u.dst.Write(u.buf)
	u.buf = u.buf[:0]
	return err
}

func (u *upperWriter) Close() error { return u.Flush() }

func TestRouteFilters(t *testing.T) {
	var calls atomic.Int32
	var seen atomic.Value
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		seen.Store(r.Header.Clone())
		w.Header().Set("X-Powered-By", "php")
		switch r.URL.Path {
		case "/api/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"a":1}`)
		case "/api/chunked":
			w.Header().Set("Content-Type", "text/plain")
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat("abc", 5000))
		default:
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello filters")
		}
	})
	f := newFixture(t, "text")
	var flushes atomic.Int32
	chain := filter.NewChain([]string{"gate", "edit", "upper"}, []any{gateFilter{}, editFilter{}, upperFilter{&flushes}})
	f.route([]route.RouteSpec{
		{Name: "api", PathPrefix: "/api", Service: "s", Filters: chain},
		{Name: "plain", PathPrefix: "/", Service: "s"},
	}, nil, setOf(t, "s", addr(b)))

	// A request filter's answer: sent instead of forwarding.
	resp, body := f.get("/api/x")
	if resp.StatusCode != 401 || body != "no key\n" || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Fatalf("refused: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp.Header.Get("X-Evil") != "" || resp.Header.Get("Injected") != "" {
		t.Errorf("a field with a CR LF was written: %v", resp.Header)
	}
	if calls.Load() != 0 {
		t.Fatalf("the upstream was called %d times for a refused request", calls.Load())
	}
	req, _ := http.NewRequest(http.MethodHead, f.front.URL+"/api/x", nil)
	if resp, body := f.do(req); resp.StatusCode != 401 || body != "" {
		t.Errorf("HEAD refused: %d %q", resp.StatusCode, body)
	}

	// Request edits reach the upstream; response edits and the body
	// filter reach the client.
	req, _ = http.NewRequest(http.MethodGet, f.front.URL+"/api/hello", nil)
	req.Header.Set("X-Key", "open")
	req.Header.Set("X-Env", "dev")
	req.Header.Set("X-Debug", "1")
	resp, body = f.do(req)
	if resp.StatusCode != 200 || body != "HELLO FILTERS" {
		t.Fatalf("forwarded: %d %q", resp.StatusCode, body)
	}
	h := seen.Load().(http.Header)
	if h.Get("X-Env") != "prod" || len(h.Values("X-Env")) != 1 || h.Get("X-Debug") != "" ||
		strings.Join(h.Values("X-Seen"), ",") != "1,2" || h.Get("X-Gate") != "passed:api:/api/hello" || h.Get("X-Bad") != "" {
		t.Errorf("upstream request fields: %v", h)
	}
	if resp.Header.Get("Strict-Transport-Security") != "max-age=63072000" || resp.Header.Get("X-Powered-By") != "" ||
		resp.Header.Get("X-Upstream-Type") != "text/plain" || resp.Header.Get("X-Upper") != "1" {
		t.Errorf("response fields: %v", resp.Header)
	}
	// The fast lane sends a rewritten body chunked; net/http may count a
	// small one itself. Either way no length is the upstream's.
	if resp.ContentLength != -1 && resp.ContentLength != int64(len(body)) {
		t.Errorf("a rewritten body kept the upstream's length: %d", resp.ContentLength)
	}

	// A body the filter leaves alone keeps its length.
	req, _ = http.NewRequest(http.MethodGet, f.front.URL+"/api/json", nil)
	req.Header.Set("X-Key", "open")
	resp, body = f.do(req)
	if body != `{"a":1}` || resp.ContentLength != 7 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("json: %d %q %v", resp.ContentLength, body, resp.Header)
	}

	// A chunked upstream body through the body filter.
	req, _ = http.NewRequest(http.MethodGet, f.front.URL+"/api/chunked", nil)
	req.Header.Set("X-Key", "open")
	if _, body = f.do(req); body != strings.Repeat("ABC", 5000) {
		t.Errorf("chunked: %d bytes, want %d upper-cased", len(body), 15000)
	}
	if flushes.Load() == 0 {
		t.Error("the body filter was never flushed")
	}

	// A route without filters is untouched.
	resp, body = f.get("/plain")
	if body != "hello filters" || resp.Header.Get("X-Powered-By") != "php" || resp.ContentLength != 13 {
		t.Errorf("plain route: %q %v", body, resp.Header)
	}
}

// TestFilterAnswerClosesOverUnreadBody: a request refused by a filter with
// its body unread ends its connection after the answer, in both lanes.
func TestFilterAnswerClosesOverUnreadBody(t *testing.T) {
	var calls atomic.Int32
	b := backend(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "api", PathPrefix: "/", Service: "s",
		Filters: filter.NewChain([]string{"gate"}, []any{gateFilter{}})}}, nil, setOf(t, "s", addr(b)))
	c := f.dial()
	io.WriteString(c, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !resp.Close {
		t.Errorf("got %d close=%v, want 401 closing the connection", resp.StatusCode, resp.Close)
	}
	if calls.Load() != 0 {
		t.Error("the upstream was called")
	}
}

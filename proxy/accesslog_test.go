package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
)

func TestAccessLogText(t *testing.T) {
	var buf bytes.Buffer
	l := accesslog.New(&buf, "text")
	l.Log(&accesslog.Entry{
		Start:    time.Date(2026, 11, 24, 18, 0, 0, 0, time.FixedZone("CET", 3600)),
		Duration: 1234567 * time.Nanosecond,
		Client:   "127.0.0.1:5555", Method: "GET", Host: "x", Path: "/api/user/1", Proto: "HTTP/1.1",
		Status: 200, BytesSent: 64, Route: "users", Service: "user", Upstream: "127.0.0.1:9001", Attempts: 1,
		RequestID: "9f8e7d6c",
	})
	l.Log(&accesslog.Entry{
		Start:  time.Date(2026, 11, 24, 17, 0, 0, 5e6, time.UTC),
		Client: "[::1]:1", Method: "GET", Path: "/a\"b\\c\x00 d", Proto: "HTTP/1.0", Status: 404,
	})
	want := `2026-11-24T17:00:00.000Z 127.0.0.1:5555 "GET /api/user/1 HTTP/1.1" 200 64 1.235ms host=x route=users service=user upstream=127.0.0.1:9001 attempts=1 request_id=9f8e7d6c` + "\n" +
		`2026-11-24T17:00:00.005Z [::1]:1 "GET /a\x22b\x5Cc\x00 d HTTP/1.0" 404 0 0.000ms host=- route=- service=- upstream=- attempts=0 request_id=-` + "\n"
	if got := buf.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestAccessLogJSON(t *testing.T) {
	var buf bytes.Buffer
	l := accesslog.New(&buf, "json")
	l.Log(&accesslog.Entry{
		Start:    time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC),
		Duration: 2 * time.Millisecond,
		Client:   "127.0.0.1:5555", Method: "POST", Host: "shop", Path: "/a\"\n\xff", Proto: "HTTP/1.1",
		Status: 502, BytesSent: 40, Route: "r", Service: "s", Upstream: "10.0.0.1:80", Attempts: 3,
		RequestID: "abc",
	})
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	want := map[string]any{
		"time": "2026-11-24T17:00:00.000Z", "client": "127.0.0.1:5555", "method": "POST", "host": "shop",
		"path": "/a\"\n\ufffd", "proto": "HTTP/1.1", "status": 502.0, "bytes": 40.0, "duration_ms": 2.0,
		"route": "r", "service": "s", "upstream": "10.0.0.1:80", "attempts": 3.0, "request_id": "abc",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) || !strings.HasSuffix(buf.String(), "}\n") || strings.Count(buf.String(), "\n") != 1 {
		t.Errorf("got %q, want one object on one line", buf.String())
	}
}

// countingWriter checks that every line arrives in one Write call.
type countingWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func TestAccessLogOneWritePerLine(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		w := &countingWriter{}
		l := accesslog.New(w, format)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() { l.Log(&accesslog.Entry{Method: "GET", Path: "/x", Status: 200}) })
		}
		wg.Wait()
		if len(w.writes) != 50 {
			t.Fatalf("%s: got %d writes, want 50", format, len(w.writes))
		}
		for _, s := range w.writes {
			if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
				t.Fatalf("%s: write %q is not exactly one line", format, s)
			}
		}
	}
}

func TestAccessLogOfProxiedRequest(t *testing.T) {
	f := newFixture(t, "text")
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 64)) })
	f.route([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil, setOf(t, "user", addr(be)))
	f.get("/api/user/1?secret=1")
	f.get("/nowhere")
	lines := f.accessLines(2)
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %q", len(lines), lines)
	}
	re := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1:\d+ "GET /api/user/1 HTTP/1\.1" 200 64 \d+\.\d{3}ms host=\S+ route=users service=user upstream=` +
		regexp.QuoteMeta(addr(be)) + ` attempts=1 request_id=[0-9a-f]{32}$`)
	if !re.MatchString(lines[0]) {
		t.Errorf("got %q, want it to match %s", lines[0], re)
	}
	if want := `"GET /nowhere HTTP/1.1" 404 29 `; !strings.Contains(lines[1], want) || !regexp.MustCompile(`route=- service=- upstream=- attempts=0 request_id=[0-9a-f]{32}$`).MatchString(lines[1]) {
		t.Errorf("got %q, want %q and no route", lines[1], want)
	}
}

func TestResponseWriterKeepsFlushAndUnwrap(t *testing.T) {
	rec := httptest.NewRecorder()
	rw := &responseWriter{ResponseWriter: rec}
	if err := rw.flush(); err != nil {
		t.Fatalf("flush through the wrapper: %v", err)
	}
	if !rec.Flushed {
		t.Fatal("not flushed")
	}
	rw.WriteHeader(200)
	if rw.Unwrap() != rec {
		t.Fatal("Unwrap does not return the server's writer")
	}
	rw.WriteHeader(http.StatusTeapot) // too late: the first status stands
	n, _ := rw.Write([]byte("abc"))
	if rw.status != 200 || rw.bytes != 3 || n != 3 {
		t.Fatalf("status=%d bytes=%d, want 200 and 3", rw.status, rw.bytes)
	}
}

func TestAccessLogFailoverDatacenter(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		l := accesslog.New(&buf, format)
		accesslog.SetFailoverDatacenters(l, map[string]map[string]string{"user": {"10.0.0.9:80": "dc2"}})
		l.Log(&accesslog.Entry{Start: time.Unix(0, 0), Service: "user", Upstream: "10.0.0.9:80", Status: 200})
		l.Log(&accesslog.Entry{Start: time.Unix(0, 0), Service: "user", Upstream: "10.0.0.1:80", Status: 200})
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		want := " dc=dc2"
		if format == "json" {
			want = `,"datacenter":"dc2"}`
		}
		if len(lines) != 2 || !strings.HasSuffix(lines[0], want) || strings.Contains(lines[1], "dc2") {
			t.Errorf("%s: got %q, want the first line to end in %q and the second to name no datacenter", format, lines, want)
		}
	}
}

package compress

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/fakecore"
)

// serve puts f in front of upstream through the test core.
func serve(t *testing.T, f *Filter, upstream http.Handler) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	core := &fakecore.Core{Chain: filter.NewChain([]string{"compress"}, []any{f}), Upstream: up.URL, Route: "api",
		FlushEachRead: true}
	front := httptest.NewServer(core)
	t.Cleanup(front.Close)
	return front
}

var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestThroughCore: real upstream responses, with and without a length,
// decoded by the reference decoders.
func TestThroughCore(t *testing.T) {
	body := strings.Repeat(`{"id":1,"name":"fox"},`, 200)
	// min_bytes 1: the streamed body is compressed from its first read
	// whatever sizes the reads come in (min_bytes is TestStreamedMinBytes').
	f := newFilter(t, func(c *config.Compress) { c.MinBytes = 1 })
	front := serve(t, f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Vary", "Origin")
		if r.URL.Path == "/streamed" {
			for i := 0; i < len(body); i += 1000 {
				io.WriteString(w, body[i:min(i+1000, len(body))])
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body)
	}))
	for _, path := range []string{"/sized", "/streamed"} {
		for _, enc := range []string{"gzip", "br", "zstd"} {
			t.Run(path+"/"+enc, func(t *testing.T) {
				resp, b := get(t, front.URL+path, "Accept-Encoding", enc)
				if got := resp.Header.Get("Content-Encoding"); got != enc {
					t.Fatalf("Content-Encoding: got %q, want %q", got, enc)
				}
				if resp.ContentLength != -1 {
					t.Errorf("Content-Length: got %d, want none (chunked)", resp.ContentLength)
				}
				if got := resp.Header.Values("Vary"); strings.Join(got, ",") != "Origin,Accept-Encoding" {
					t.Errorf("Vary: got %q", got)
				}
				if got := resp.Header.Get("ETag"); got != `W/"abc"` {
					t.Errorf("ETag: got %s, want W/\"abc\"", got)
				}
				if got := decode(t, enc, b); got != body {
					t.Errorf("body: got %d bytes, want %d", len(got), len(body))
				}
				if len(b) >= len(body) {
					t.Errorf("compressed %d bytes into %d", len(body), len(b))
				}
			})
		}
	}
	t.Run("identity", func(t *testing.T) {
		resp, b := get(t, front.URL+"/sized")
		if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(b, []byte(body)) || resp.ContentLength != int64(len(body)) {
			t.Errorf("without Accept-Encoding: got encoding %q, length %d", resp.Header.Get("Content-Encoding"), resp.ContentLength)
		}
	})
}

// TestEventStreamNotHeld: an SSE response passes as is, event by event.
func TestEventStreamNotHeld(t *testing.T) {
	next := make(chan struct{})
	front := serve(t, newFilter(t, func(c *config.Compress) { c.MinBytes = 0 }), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	}))
	req, _ := http.NewRequest("GET", front.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 11)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "data: one\n\n" {
		t.Fatalf("first event: got %q, %v", buf, err)
	}
	close(next)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "data: two\n\n" || resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("rest: got %q, encoding %q", rest, resp.Header.Get("Content-Encoding"))
	}
}

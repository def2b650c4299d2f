package cache

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/compress"
	"github.com/ferry-proxy/ferry/proxy/filter/fakecore"
)

// TestCacheBeforeCompress: with [cache, compress] the cache stores what
// the client got, one variant per Accept-Encoding (compress adds Vary),
// and revalidates the weakened ETag.
func TestCacheBeforeCompress(t *testing.T) {
	body := strings.Repeat("compressible text ", 200)
	clk := newClock()
	var upstream int
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream++
		w.Header().Set("Date", clk.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Type", "text/plain")
		if inm := r.Header.Get("If-None-Match"); inm == `W/"v1"` || inm == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte(body))
	}))
	defer up.Close()
	c, err := New(testConfig(), Deps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	z, err := compress.New(config.Compress{Encodings: []string{"gzip"}, MinBytes: 100, Types: []string{"text/*"}})
	if err != nil {
		t.Fatal(err)
	}
	core := &fakecore.Core{Chain: filter.NewChain([]string{"cache", "compress"}, []any{c, z}), Upstream: up.URL, Route: "api"}
	front := httptest.NewServer(core)
	defer front.Close()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	get := func(ae, xcache, enc string) {
		t.Helper()
		r := doOn(t, client, front.URL, "GET", "/t", "Accept-Encoding", ae)
		if r.header.Get("X-Cache") != xcache || r.header.Get("Content-Encoding") != enc {
			t.Fatalf("Accept-Encoding %q: got X-Cache %q encoding %q, want %q %q", ae, r.header.Get("X-Cache"), r.header.Get("Content-Encoding"), xcache, enc)
		}
		got := r.body
		if enc == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader([]byte(r.body)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(zr)
			got = string(b)
			if r.header.Get("ETag") != `W/"v1"` {
				t.Errorf("ETag: got %s", r.header.Get("ETag"))
			}
		}
		if got != body {
			t.Errorf("body: got %d bytes, want %d", len(got), len(body))
		}
	}
	get("gzip", "MISS", "gzip")
	get("gzip", "HIT", "gzip")
	get("identity", "MISS", "")
	get("identity", "HIT", "")
	if upstream != 2 {
		t.Errorf("upstream requests: %d, want 2", upstream)
	}
	clk.advance(11 * time.Second)
	get("gzip", "REVALIDATED", "gzip") // W/"v1" went upstream; the 304's strong ETag did not replace it
	get("gzip", "HIT", "gzip")
}

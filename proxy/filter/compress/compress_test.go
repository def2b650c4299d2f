package compress

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter/fakecore"
	"github.com/klauspost/compress/zstd"
)

func newFilter(t testing.TB, mod func(*config.Compress)) *Filter {
	t.Helper()
	cfg := config.Compress{Encodings: []string{"zstd", "br", "gzip"}, MinBytes: 100,
		Types: []string{"text/*", "application/json"}}
	if mod != nil {
		mod(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// decode inflates body with the reference decoder of enc ("" = identity).
func decode(t testing.TB, enc string, body []byte) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "":
		return string(body)
	case "gzip":
		zr, err := stdgzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unknown encoding %q", enc)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: decoding: %v", enc, err)
	}
	return string(out)
}

var text = strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20) // 900 bytes

// TestRules drives Body with views for every rule that decides whether a
// response is compressed.
func TestRules(t *testing.T) {
	cl := strconv.Itoa(len(text))
	for _, tc := range []struct {
		name     string
		method   string
		req      []string // request header pairs
		status   int
		resp     []string // response header pairs
		wantEnc  string   // "" = sent as is
		wantVary string   // the Vary field after Body
	}{
		{name: "gzip", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html", "Content-Length", cl},
			wantEnc: "gzip", wantVary: "Accept-Encoding"},
		{name: "route preference", req: []string{"Accept-Encoding", "gzip, deflate, br, zstd"}, resp: []string{"Content-Type", "text/html"},
			wantEnc: "zstd", wantVary: "Accept-Encoding"},
		{name: "no accept-encoding still varies", resp: []string{"Content-Type", "text/html", "Content-Length", cl},
			wantVary: "Accept-Encoding"},
		{name: "vary merged", req: []string{"Accept-Encoding", "br"}, resp: []string{"Content-Type", "text/html", "Vary", "Origin"},
			wantEnc: "br", wantVary: "Origin,Accept-Encoding"},
		{name: "vary kept once", req: []string{"Accept-Encoding", "br"}, resp: []string{"Content-Type", "text/html", "Vary", "accept-encoding, Origin"},
			wantEnc: "br", wantVary: "accept-encoding, Origin"},
		{name: "vary star untouched", req: []string{"Accept-Encoding", "br"}, resp: []string{"Content-Type", "text/html", "Vary", "*"},
			wantEnc: "br", wantVary: "*"},
		{name: "wildcard type", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/css; charset=utf-8"},
			wantEnc: "gzip", wantVary: "Accept-Encoding"},
		{name: "unlisted type", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "image/png"}},
		{name: "no content type", req: []string{"Accept-Encoding", "gzip"}},
		{name: "already encoded", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html", "Content-Encoding", "br"}},
		{name: "identity encoding may be compressed", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html", "Content-Encoding", "identity"},
			wantEnc: "gzip", wantVary: "Accept-Encoding"},
		{name: "no-transform", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html", "Cache-Control", "public, no-transform"}},
		{name: "range request", req: []string{"Accept-Encoding", "gzip", "Range", "bytes=0-10"}, resp: []string{"Content-Type", "text/html"}},
		{name: "206", status: 206, req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html"}},
		{name: "HEAD", method: "HEAD", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html", "Content-Length", cl}},
		{name: "204", status: 204, req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html"}},
		{name: "304", status: 304, req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html"}},
		{name: "101", status: 101, req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html"}},
		{name: "event stream", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/event-stream"}},
		{name: "below min_bytes", req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "text/html", "Content-Length", "99"},
			wantVary: "Accept-Encoding"},
		{name: "404 compressed", status: 404, req: []string{"Accept-Encoding", "gzip"}, resp: []string{"Content-Type", "application/json"},
			wantEnc: "gzip", wantVary: "Accept-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, nil)
			method := tc.method
			if method == "" {
				method = "GET"
			}
			status := tc.status
			if status == 0 {
				status = 200
			}
			r := fakecore.NewTestRequest(method, "http://shop.test/x", tc.req...)
			w := fakecore.NewTestResponse(status, tc.resp...)
			var dst bytes.Buffer
			bw := f.Body(r, w, &dst)
			if bw != nil {
				if _, err := io.WriteString(bw, text); err != nil {
					t.Fatal(err)
				}
				if err := bw.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				dst.WriteString(text)
			}
			wantCE := tc.wantEnc
			if wantCE == "" { // sent as is: the upstream's own field, if any
				wantCE = fakecore.NewTestResponse(status, tc.resp...).Header("Content-Encoding")
			}
			if got := w.Header("Content-Encoding"); got != wantCE {
				t.Errorf("Content-Encoding: got %q, want %q", got, wantCE)
			}
			if got := strings.Join(w.HeaderValues("Vary"), ","); got != tc.wantVary {
				t.Errorf("Vary: got %q, want %q", got, tc.wantVary)
			}
			if tc.wantEnc != "" {
				if got := decode(t, tc.wantEnc, dst.Bytes()); got != text {
					t.Errorf("decoded body: got %d bytes, want the %d sent", len(got), len(text))
				}
				if w.Header("Content-Length") != "" {
					t.Errorf("Content-Length %q kept on a compressed body", w.Header("Content-Length"))
				}
			} else if dst.String() != text {
				t.Errorf("identity body changed: got %d bytes", dst.Len())
			}
		})
	}
}

func TestETagWeakened(t *testing.T) {
	for _, tc := range []struct{ etag, want string }{
		{`"v1"`, `W/"v1"`},
		{`W/"v1"`, `W/"v1"`},
	} {
		f := newFilter(t, nil)
		r := fakecore.NewTestRequest("GET", "http://shop.test/", "Accept-Encoding", "gzip")
		w := fakecore.NewTestResponse(200, "Content-Type", "text/plain", "ETag", tc.etag, "Content-Length", "900")
		bw := f.Body(r, w, io.Discard)
		if bw == nil {
			t.Fatal("not compressed")
		}
		bw.Close()
		if got := w.Header("ETag"); got != tc.want {
			t.Errorf("ETag %s: got %s, want %s", tc.etag, got, tc.want)
		}
	}
}

// TestStreamedMinBytes: a body of unknown length is held until min_bytes
// arrived, then compressed; one that ends below it is sent as is with its
// head untouched.
func TestStreamedMinBytes(t *testing.T) {
	f := newFilter(t, func(c *config.Compress) { c.MinBytes = 50 })
	for _, tc := range []struct {
		name    string
		parts   []string
		wantEnc string
	}{
		{"reaches min_bytes", []string{strings.Repeat("a", 30), strings.Repeat("b", 30), strings.Repeat("c", 500)}, "gzip"},
		{"reaches it exactly", []string{strings.Repeat("a", 49), "b"}, "gzip"},
		{"ends below", []string{strings.Repeat("a", 20), strings.Repeat("b", 29)}, ""},
		{"empty", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fakecore.NewTestRequest("GET", "http://shop.test/", "Accept-Encoding", "gzip")
			w := fakecore.NewTestResponse(200, "Content-Type", "application/json")
			var dst bytes.Buffer
			bw := f.Body(r, w, &dst)
			if bw == nil {
				t.Fatal("no writer for an eligible body of unknown length")
			}
			for _, p := range tc.parts {
				bw.Write([]byte(p))
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			if got := w.Header("Content-Encoding"); got != tc.wantEnc {
				t.Fatalf("Content-Encoding: got %q, want %q", got, tc.wantEnc)
			}
			if got, want := decode(t, tc.wantEnc, dst.Bytes()), strings.Join(tc.parts, ""); got != want {
				t.Errorf("body: got %q, want %q", got, want)
			}
		})
	}
}

// TestFlushStreams: every encoder's Flush makes what was written so far
// decodable, so a streaming response is not held; a pause before
// min_bytes sends the body as is.
func TestFlushStreams(t *testing.T) {
	for _, enc := range []string{"gzip", "br", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			f := newFilter(t, func(c *config.Compress) { c.MinBytes = 10 })
			r := fakecore.NewTestRequest("GET", "http://shop.test/", "Accept-Encoding", enc)
			w := fakecore.NewTestResponse(200, "Content-Type", "application/json")
			var dst bytes.Buffer
			bw := f.Body(r, w, &dst)
			bw.Write([]byte(`{"event":1}` + "\n"))
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := decodePrefix(t, enc, dst.Bytes()); got != `{"event":1}`+"\n" {
				t.Errorf("after Flush the client can decode %q, want the first event", got)
			}
			bw.Write([]byte(`{"event":2}` + "\n"))
			bw.Close()
			if got := decode(t, enc, dst.Bytes()); got != `{"event":1}`+"\n"+`{"event":2}`+"\n" {
				t.Errorf("whole body: got %q", got)
			}
		})
	}
	t.Run("pause before min_bytes", func(t *testing.T) {
		f := newFilter(t, func(c *config.Compress) { c.MinBytes = 1000 })
		r := fakecore.NewTestRequest("GET", "http://shop.test/", "Accept-Encoding", "gzip")
		w := fakecore.NewTestResponse(200, "Content-Type", "application/json")
		var dst bytes.Buffer
		bw := f.Body(r, w, &dst)
		bw.Write([]byte("tick\n"))
		bw.Flush()
		if dst.String() != "tick\n" || w.Header("Content-Encoding") != "" {
			t.Errorf("got %q encoded %q, want the held bytes sent as is", dst.String(), w.Header("Content-Encoding"))
		}
		bw.Write([]byte(strings.Repeat("x", 2000)))
		bw.Close()
		if dst.Len() != 2005 {
			t.Errorf("got %d bytes, want 2005 unencoded", dst.Len())
		}
	})
}

// decodePrefix decodes a stream that is not finished yet.
func decodePrefix(t *testing.T, enc string, b []byte) string {
	t.Helper()
	var r io.Reader
	switch enc {
	case "gzip":
		zr, err := stdgzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	var out bytes.Buffer
	buf := make([]byte, 1)
	for { // byte by byte: stop at the end of what was flushed
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err != nil || out.Len() > 1<<20 {
			return out.String()
		}
		if n == 0 {
			return out.String()
		}
	}
}

// TestAbortWritesNoTrailer: a cut-off body stays visibly incomplete.
func TestAbortWritesNoTrailer(t *testing.T) {
	f := newFilter(t, nil)
	r := fakecore.NewTestRequest("GET", "http://shop.test/", "Accept-Encoding", "gzip")
	w := fakecore.NewTestResponse(200, "Content-Type", "text/plain", "Content-Length", "100000")
	var dst bytes.Buffer
	bw := f.Body(r, w, &dst)
	bw.Write([]byte(text))
	bw.Flush()
	bw.(*writer).Abort()
	zr, err := stdgzip.NewReader(bytes.NewReader(dst.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(zr); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("decoding an aborted body: got %v, want unexpected EOF", err)
	}
	// The pooled encoder is reusable after an abort.
	w2 := fakecore.NewTestResponse(200, "Content-Type", "text/plain", "Content-Length", "900")
	var dst2 bytes.Buffer
	bw2 := f.Body(r, w2, &dst2)
	bw2.Write([]byte(text))
	bw2.Close()
	if got := decode(t, "gzip", dst2.Bytes()); got != text {
		t.Errorf("after an abort, the next body decodes to %d bytes, want %d", len(got), len(text))
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []config.Compress{
		{},
		{Encodings: []string{"deflate"}},
		{Encodings: []string{"gzip", "br", "zstd", "gzip"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): got no error", cfg)
		}
	}
}

// TestNeverHoldsTheBody: a long body of unknown length leaves the filter
// as it arrives, not at Close.
func TestNeverHoldsTheBody(t *testing.T) {
	f := newFilter(t, nil)
	r := fakecore.NewTestRequest("GET", "http://shop.test/", "Accept-Encoding", "gzip")
	w := fakecore.NewTestResponse(200, "Content-Type", "text/plain")
	var dst bytes.Buffer
	bw := f.Body(r, w, &dst)
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096)) // 64 KiB
	written := 0
	for i := range 64 { // 4 MiB in all
		chunk[i] = byte('A' + i%26)
		bw.Write(chunk)
		written += len(chunk)
	}
	if dst.Len() == 0 {
		t.Fatalf("after %d bytes in, nothing came out: the body is held", written)
	}
	before := dst.Len()
	bw.Close()
	if got := decode(t, "gzip", dst.Bytes()); len(got) != written {
		t.Errorf("decoded %d bytes, want %d", len(got), written)
	}
	if before < dst.Len()/2 {
		t.Errorf("only %d of %d compressed bytes left before Close", before, dst.Len())
	}
}

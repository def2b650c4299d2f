package compress

import (
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/filter/fakecore"
)

// BenchmarkResponse: one 4 KiB JSON response per op, encoder pooled; the
// allocations reported are the filter's per-response cost.
func BenchmarkResponse(b *testing.B) {
	body := []byte(strings.Repeat(`{"id":12345,"name":"a fox","tags":["x","y"]},`, 92)[:4096])
	for _, enc := range []string{"gzip", "br", "zstd"} {
		b.Run(enc, func(b *testing.B) {
			f := newFilter(b, nil)
			r := fakecore.NewTestRequest("GET", "http://shop.test/", "Accept-Encoding", enc)
			w := fakecore.NewTestResponse(200, "Content-Type", "application/json")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				w.SetHeader("Content-Length", strconv.Itoa(len(body)))
				w.DelHeader("Vary")
				w.DelHeader("Content-Encoding")
				bw := f.Body(r, w, io.Discard)
				bw.Write(body)
				bw.Close()
			}
		})
	}
}

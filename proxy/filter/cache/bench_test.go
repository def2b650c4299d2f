package cache

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/filter/fakecore"
)

// BenchmarkHit: the filter's cost of answering a fresh hit from memory
// (the request view is built once; the core's own cost is not measured).
func BenchmarkHit(b *testing.B) {
	f, err := New(testConfig(), Deps{})
	if err != nil {
		b.Fatal(err)
	}
	r := fakecore.NewTestRequest("GET", "http://shop.test/api/items?page=2", "Accept-Encoding", "gzip")
	k := requestKey(r)
	o := &object{status: 200, body: make([]byte, 4096), vary: []string{"accept-encoding"},
		header: [][2]string{{"Content-Type", "application/json"}, {"Cache-Control", "max-age=3600"},
			{"Content-Encoding", "gzip"}, {"Vary", "Accept-Encoding"}}}
	o.varyKey = variantKey(o.vary, r)
	o.fresh = freshness{requestTime: time.Now(), responseTime: time.Now()}
	o.derive()
	f.mem.put(k, o)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if a := f.Request(ctx, r); a == nil || a.Status != 200 {
			b.Fatal("not a hit")
		}
	}
}

package route

import (
	"testing"
	"time"
)

func TestBucketOf(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {500 * time.Microsecond, 0}, {500*time.Microsecond + 1, 1}, {time.Millisecond, 1},
		{3 * time.Millisecond, 3}, {time.Second, 10}, {60 * time.Second, 15}, {61 * time.Second, 16}, {time.Hour, 16},
	} {
		if got := bucketOf(tc.d); got != tc.want {
			t.Errorf("bucketOf(%v): got %d, want %d", tc.d, got, tc.want)
		}
	}
	for i := 1; i < numBuckets; i++ {
		if DurationBuckets[i] <= DurationBuckets[i-1] {
			t.Fatalf("DurationBuckets not increasing at %d", i)
		}
	}
}

func TestHistogramSnapshotAndQuantile(t *testing.T) {
	var h Histogram
	if q := h.Snapshot().Quantile(0.5); q != 0 {
		t.Errorf("empty histogram: p50 %v, want 0", q)
	}
	// 100 durations of 7 ms: all in the (5 ms, 10 ms] bucket.
	for range 100 {
		h.Observe(7 * time.Millisecond)
	}
	first := h.Snapshot()
	if first.Count() != 100 || first.Sum != 700*time.Millisecond {
		t.Fatalf("got count %d sum %v, want 100, 700ms", first.Count(), first.Sum)
	}
	// histogram_quantile interpolates within the bucket: p50 = 7.5 ms.
	if got := first.Quantile(0.5); got != 7500*time.Microsecond {
		t.Errorf("p50: got %v, want 7.5ms", got)
	}
	if got := first.Quantile(0.99); got != 9950*time.Microsecond {
		t.Errorf("p99: got %v, want 9.95ms", got)
	}
	cum := first.Cumulative()
	if cum[3] != 0 || cum[4] != 100 || cum[numBuckets-1] != 100 {
		t.Errorf("cumulative: got %v", cum)
	}
	// Then 100 slow ones: the difference holds only them.
	for range 100 {
		h.Observe(2 * time.Minute)
	}
	d := h.Snapshot().Sub(first)
	if d.Count() != 100 || d.Counts[numBuckets] != 100 {
		t.Fatalf("delta: got %v", d.Counts)
	}
	if got := d.Quantile(0.99); got != DurationBuckets[numBuckets-1] {
		t.Errorf("p99 in +Inf: got %v, want the last bound", got)
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(time.Duration(i&0xffff) * time.Microsecond)
	}
}

package discovery

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestNextIndex(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name      string
		last, got uint64
		want      indexStep
	}{
		{"first answer", 0, 42, indexStep{next: 42}},
		{"moved forward", 42, 43, indexStep{next: 43}},
		{"unchanged (timeout)", 42, 42, indexStep{next: 42}},
		{"went backwards", 42, 7, indexStep{next: 0, reset: true}},
		{"zero is invalid: block on 1", 0, 0, indexStep{next: 1}},
		{"dropped to zero", 42, 0, indexStep{next: 0, reset: true}},
		{"one", 1, 1, indexStep{next: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextIndex(tt.last, tt.got); got != tt.want {
				t.Errorf("nextIndex(%d, %d) = %+v, want %+v", tt.last, tt.got, got, tt.want)
			}
		})
	}
}

func TestPause(t *testing.T) {
	defer goleak.VerifyNone(t)
	tm := defaultTiming
	floor := func(r float64) time.Duration { return tm.floor(r) }
	spin := func(r float64) time.Duration { return jitter(tm.spinWait, r) }
	tests := []struct {
		name                 string
		waitIndex, last, got uint64
		elapsed              time.Duration
		r                    float64
		want                 time.Duration
	}{
		{"first plain read", 0, 0, 10, 5 * time.Millisecond, 0, floor(0)},
		{"change woke the query", 10, 10, 11, 3 * time.Millisecond, 0.5, floor(0.5)},
		{"blocking query timed out", 10, 10, 10, 30 * time.Second, 0.5, floor(0.5)},
		{"blocking query returned fast, same index", 10, 10, 10, 2 * time.Millisecond, 0.5, spin(0.5)},
		{"index zero answered fast", 1, 0, 0, time.Millisecond, 0, spin(0)},
		{"index went backwards fast", 10, 10, 3, time.Millisecond, 0.99, spin(0.99)},
		{"index went backwards slowly", 10, 10, 3, 2 * time.Second, 0, floor(0)},
		{"plain read after an error, same index", 0, 10, 10, time.Millisecond, 0, floor(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pause(tt.waitIndex, tt.last, tt.got, tt.elapsed, tm, tt.r)
			if got != tt.want {
				t.Errorf("pause = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTimingBounds(t *testing.T) {
	defer goleak.VerifyNone(t)
	tm := defaultTiming
	for _, r := range []float64{0, 0.25, 0.5, 0.999999} {
		if f := tm.floor(r); f < 10*time.Millisecond || f >= 30*time.Millisecond {
			t.Errorf("floor(%v) = %v, want in [10ms, 30ms)", r, f)
		}
		if c := tm.confirm(r); c < 800*time.Millisecond || c > 1200*time.Millisecond {
			t.Errorf("confirm(%v) = %v, want in [0.8s, 1.2s]", r, c)
		}
	}
}

func TestBackoff(t *testing.T) {
	defer goleak.VerifyNone(t)
	base, cp := 250*time.Millisecond, 30*time.Second
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0, 0},
		{1, 0.5, 125 * time.Millisecond},
		{1, 1, 250 * time.Millisecond},
		{2, 1, 500 * time.Millisecond},
		{3, 0.5, 500 * time.Millisecond},
		{7, 1, 16 * time.Second},
		{8, 1, 30 * time.Second}, // 32s capped
		{8, 0.5, 15 * time.Second},
		{1000, 1, 30 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		if got := backoff(tt.n, base, cp, tt.r); got != tt.want {
			t.Errorf("backoff(%d, r=%v) = %v, want %v", tt.n, tt.r, got, tt.want)
		}
	}
}

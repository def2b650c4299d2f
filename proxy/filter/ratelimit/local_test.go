package ratelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a clock the test moves.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Unix(1_800_000_000, 0).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func take(t *testing.T, s Store, key string) Decision {
	t.Helper()
	d, err := s.Take(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLocalBucket(t *testing.T) {
	c := newClock()
	l := NewLocal(Bucket{Rate: 10, Per: time.Second, Burst: 3}, 1000, c.now)
	for i, wantRemaining := range []int{2, 1, 0} {
		d := take(t, l, "a")
		if !d.Allowed || d.Remaining != wantRemaining {
			t.Fatalf("request %d: got %+v, want allowed with %d left", i, d, wantRemaining)
		}
	}
	d := take(t, l, "a")
	if d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("4th request: got %+v, want refused, retry after 100ms", d)
	}
	if d := take(t, l, "b"); !d.Allowed || d.Remaining != 2 {
		t.Errorf("another key: got %+v, want its own full bucket", d)
	}
	c.advance(100 * time.Millisecond)
	if d := take(t, l, "a"); !d.Allowed || d.Remaining != 0 {
		t.Errorf("after one interval: got %+v, want one token", d)
	}
	if d := take(t, l, "a"); d.Allowed {
		t.Errorf("again: got %+v, want refused", d)
	}
	c.advance(time.Hour)
	if d := take(t, l, "a"); !d.Allowed || d.Remaining != 2 || d.Full != 100*time.Millisecond {
		t.Errorf("after an hour: got %+v, want a full bucket (not more than burst)", d)
	}
}

func TestLocalSustainedRate(t *testing.T) {
	c := newClock()
	l := NewLocal(Bucket{Rate: 100, Per: time.Minute, Burst: 5}, 10, c.now)
	allowed := 0
	for i := 0; i < 6000; i++ { // 10 minutes, a request every 100ms
		if take(t, l, "k").Allowed {
			allowed++
		}
		c.advance(100 * time.Millisecond)
	}
	if allowed < 1000 || allowed > 1005 {
		t.Errorf("allowed %d in 10 minutes at 100/min burst 5, want 1000 to 1005", allowed)
	}
}

func TestLocalBounded(t *testing.T) {
	c := newClock()
	l := NewLocal(Bucket{Rate: 1, Per: time.Hour, Burst: 1}, 32*10, c.now)
	for i := 0; i < 10000; i++ {
		take(t, l, fmt.Sprint("client-", i))
	}
	if n := l.Len(); n > 32*10 {
		t.Errorf("holds %d keys, want at most %d", n, 32*10)
	}
	// Idle keys (full buckets) go first: after an hour every bucket is full
	// again, and new keys find room without evicting active ones.
	c.advance(2 * time.Hour)
	take(t, l, "active")
	for i := 0; i < 5000; i++ {
		take(t, l, fmt.Sprint("new-", i))
		if i%50 == 0 {
			c.advance(time.Millisecond)
		}
	}
	if n := l.Len(); n > 32*10 {
		t.Errorf("holds %d keys, want at most %d", n, 32*10)
	}
}

func TestGCRAFractionalInterval(t *testing.T) {
	// 3 per second: an interval of 333.3ms must not drift into a higher rate.
	c := newClock()
	l := NewLocal(Bucket{Rate: 3, Per: time.Second, Burst: 1}, 10, c.now)
	allowed := 0
	for i := 0; i < 3000; i++ { // 30s in 10ms steps
		if take(t, l, "k").Allowed {
			allowed++
		}
		c.advance(10 * time.Millisecond)
	}
	if allowed < 88 || allowed > 91 { // 10ms steps: a token every 340ms at worst
		t.Errorf("allowed %d in 30s at 3/s, want 88 to 91", allowed)
	}
}

func BenchmarkLocalTake(b *testing.B) {
	l := NewLocal(Bucket{Rate: 1_000_000_000, Per: time.Second, Burst: 1_000_000_000}, 100000, nil)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("192.0.2.", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Take(context.Background(), keys[i&1023])
		i++
	}
}

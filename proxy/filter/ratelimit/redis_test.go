package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/internal/redistest"
	"github.com/ferry-proxy/ferry/proxy/filter"
)

func newClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// ferry is one limiter instance: what one ferry process holds.
type ferry struct {
	store    *Redis
	counters *filter.Counters
	clock    *clock
}

func newFerry(t *testing.T, addr string, b Bucket) *ferry {
	var stats filter.Stats
	f := &ferry{counters: stats.For("api", "rate_limit", Reasons...), clock: newClock()}
	f.store = NewRedis(b, RedisOptions{Client: newClient(t, addr), Prefix: "ferry:ratelimit:api:1:",
		Fallback: NewLocal(b, 100, f.clock.now), Counters: f.counters, Now: f.clock.now})
	return f
}

func (f *ferry) allowed(t *testing.T, key string) bool {
	t.Helper()
	d, err := f.store.Take(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return d.Allowed
}

func TestRedisSharedLimit(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	srv := redistest.Start(t)
	b := Bucket{Rate: 5, Per: time.Hour, Burst: 5} // no refill within the test
	a, c := newFerry(t, srv.Addr, b), newFerry(t, srv.Addr, b)
	got := []bool{a.allowed(t, "k"), c.allowed(t, "k"), a.allowed(t, "k"), c.allowed(t, "k"), a.allowed(t, "k"),
		c.allowed(t, "k"), a.allowed(t, "k")}
	want := []bool{true, true, true, true, true, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("two ferries sharing burst 5: got %v, want %v", got, want)
		}
	}
	if !a.allowed(t, "other") {
		t.Error("another key was limited")
	}
	d, _ := c.store.Take(context.Background(), "k")
	if d.Allowed || d.RetryAfter < 11*time.Minute || d.RetryAfter > 12*time.Minute {
		t.Errorf("refused decision: got %+v, want retry after about 12 minutes (one token at 5/h)", d)
	}
	if a.counters.Get(ReasonStoreError)+c.counters.Get(ReasonStoreError) != 0 {
		t.Error("store errors counted while Redis was up")
	}
}

func TestRedisKilledAndRestarted(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	srv := redistest.Start(t)
	b := Bucket{Rate: 3, Per: time.Hour, Burst: 3}
	a, c := newFerry(t, srv.Addr, b), newFerry(t, srv.Addr, b)
	for i := 0; i < 3; i++ {
		a.allowed(t, "k")
	}
	if c.allowed(t, "k") {
		t.Fatal("the shared limit was not reached through the other ferry")
	}

	srv.Kill()
	// Fail open to each ferry's own bucket: requests pass (3 each), then
	// the local limit holds.
	for i := 0; i < 3; i++ {
		if !a.allowed(t, "k") || !c.allowed(t, "k") {
			t.Fatalf("request %d while Redis is down: refused, want the local fallback to allow", i)
		}
	}
	if a.allowed(t, "k") {
		t.Error("the fallback bucket did not limit")
	}
	if !a.store.Failing() || a.counters.Get(ReasonStoreError) != 4 {
		t.Errorf("failing %v, store errors %d, want true and 4", a.store.Failing(), a.counters.Get(ReasonStoreError))
	}

	srv.Restart() // empty: buckets start full
	a.clock.advance(time.Minute)
	c.clock.advance(time.Minute) // past the backoff: the next request probes Redis
	if !a.allowed(t, "k") {
		t.Error("after Redis came back: refused, want a fresh shared bucket")
	}
	if a.store.Failing() {
		t.Error("still failing after Redis answered")
	}
	c.allowed(t, "k")
	c.allowed(t, "k")
	if a.allowed(t, "k") || c.allowed(t, "k") {
		t.Error("after recovery the ferries do not share one limit again")
	}
}

func TestRedisBackoff(t *testing.T) {
	srv := redistest.Start(t)
	b := Bucket{Rate: 100, Per: time.Hour, Burst: 100}
	a := newFerry(t, srv.Addr, b)
	a.allowed(t, "k")
	srv.Kill()
	a.allowed(t, "k") // fails, starts the backoff
	asked := a.store.asked.Load()
	for i := 0; i < 10; i++ {
		a.allowed(t, "k") // within the backoff: Redis not asked
	}
	if n := a.counters.Get(ReasonStoreError); n != 11 {
		t.Errorf("store errors: got %d, want 11 (every request decided by the fallback)", n)
	}
	if got := a.store.asked.Load(); got != asked {
		t.Errorf("Redis asked %d times during the backoff, want 0", got-asked)
	}
	a.clock.advance(minRedisBackoff)
	a.allowed(t, "k") // one probe, which fails: the backoff doubles
	a.clock.advance(minRedisBackoff)
	a.allowed(t, "k") // within the doubled backoff
	if got := a.store.asked.Load(); got != asked+1 {
		t.Errorf("Redis asked %d times after two backoff steps, want 1", got-asked)
	}
}

func TestRedisSlow(t *testing.T) {
	srv := redistest.Start(t)
	b := Bucket{Rate: 2, Per: time.Hour, Burst: 2}
	a := newFerry(t, srv.Addr, b)
	a.allowed(t, "k")
	srv.Pause() // connected, but no answer: the client's timeout applies
	defer srv.Resume()
	if !a.allowed(t, "k") {
		t.Error("while Redis does not answer: refused, want the fallback")
	}
	if !a.store.Failing() || a.counters.Get(ReasonStoreError) != 1 {
		t.Errorf("failing %v, store errors %d", a.store.Failing(), a.counters.Get(ReasonStoreError))
	}
	srv.Resume()
	a.clock.advance(time.Minute)
	if a.allowed(t, "k") || a.store.Failing() {
		t.Error("after Redis answers again: want the shared bucket (now empty) and no failure")
	}
}

func TestRedisClientGone(t *testing.T) {
	srv := redistest.Start(t)
	a := newFerry(t, srv.Addr, Bucket{Rate: 1, Per: time.Hour, Burst: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.store.Take(ctx, "k")
	if a.store.Failing() {
		t.Error("a client that left marked Redis as failing")
	}
}

package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket's shape: it holds at most Burst tokens and gains
// Rate tokens every Per.
type Bucket struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// interval is the time one token takes to come back, in whole units of
// unit (ns locally, µs in Redis): integers keep the arithmetic exact (with
// floats, (now+t)-now may exceed t and refuse a request on a full bucket).
// At least one unit.
func (b Bucket) interval(unit time.Duration) int64 {
	return max(1, int64(math.Round(float64(b.Per)/float64(b.Rate)/float64(unit))))
}

// capacity is Burst intervals, saturated far below overflow.
func (b Bucket) capacity(interval int64) int64 {
	if int64(b.Burst) > math.MaxInt64/4/interval {
		return math.MaxInt64 / 4
	}
	return int64(b.Burst) * interval
}

// Decision is a store's answer for one request.
type Decision struct {
	Allowed   bool
	Remaining int // tokens left after this request
	// RetryAfter: when refused, the wait until one token is back.
	RetryAfter time.Duration
	// Full is the wait until the bucket is full again.
	Full time.Duration
}

// Store takes a token from the bucket of key.
type Store interface {
	Take(ctx context.Context, key string) (Decision, error)
}

// The buckets follow GCRA (the generic cell rate algorithm), which is a
// token bucket stored as one number per key: the theoretical arrival time
// (TAT), the time at which the bucket will be full again. A request at now
// is allowed when TAT+interval-now <= Burst*interval, and moves TAT on by
// one interval. A key whose TAT has passed has a full bucket, which is the
// same as having no entry: so forgetting idle keys changes nothing, and the
// Redis store keeps one string per key with a TTL of TAT-now.

// gcra applies one request to tat (ns since the store's base) at now,
// with interval t and capacity c in ns.
func gcra(t, c, tat, now int64) (newTAT int64, d Decision) {
	if tat < now {
		tat = now
	}
	next := tat + t
	if next-now > c {
		return tat, Decision{RetryAfter: time.Duration(next - now - c), Full: time.Duration(tat - now)}
	}
	return next, Decision{Allowed: true, Remaining: int((c - (next - now)) / t), Full: time.Duration(next - now)}
}

// Local keeps buckets in the process, bounded: at most MaxKeys keys, idle
// keys (full buckets) dropped first. Safe for concurrent use.
type Local struct {
	t, c    int64 // interval and capacity, ns
	now     func() time.Time
	base    time.Time
	seed    maphash.Seed
	perShed int // keys per shard
	shards  [numShards]shard
}

const numShards = 32

type shard struct {
	mu  sync.Mutex
	tat map[string]int64 // ns since base
}

// NewLocal returns a local store; now defaults to time.Now.
func NewLocal(b Bucket, maxKeys int, now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	t := b.interval(time.Nanosecond)
	l := &Local{t: t, c: b.capacity(t), now: now, base: now(), seed: maphash.MakeSeed(), perShed: max(1, maxKeys/numShards)}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]int64)
	}
	return l
}

// Take takes a token from key's bucket; it never fails.
func (l *Local) Take(_ context.Context, key string) (Decision, error) {
	now := int64(l.now().Sub(l.base))
	s := &l.shards[maphash.String(l.seed, key)%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, known := s.tat[key]
	tat, d := gcra(l.t, l.c, tat, now)
	if d.Allowed {
		if !known && len(s.tat) >= l.perShed {
			s.shrink(now, l.perShed)
		}
		s.tat[key] = tat
	}
	return d, nil
}

// shrink makes room: it drops the idle keys (full buckets, the same as
// absent ones) and, if the shard is still full, arbitrary keys until it is
// at 90 % (those clients get a full bucket back: the bound on memory wins
// over exactness under a flood of keys).
func (s *shard) shrink(now int64, limit int) {
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
		}
	}
	target := limit * 9 / 10
	for k := range s.tat {
		if len(s.tat) <= target {
			break
		}
		delete(s.tat, k)
	}
}

// Len is the number of keys held.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += len(l.shards[i].tat)
		l.shards[i].mu.Unlock()
	}
	return n
}

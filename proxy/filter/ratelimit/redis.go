package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// gcraScript is GCRA in one atomic round trip. Time is Redis's own (TIME),
// so that ferries with skewed clocks share one limit; whole microseconds,
// which Lua's doubles hold exactly (below 2^53), so a rate above a million
// per second per key is capped there.
// KEYS[1] the bucket; ARGV[1] interval (µs), ARGV[2] burst*interval (µs).
// It returns {allowed, remaining, retry_after µs, full µs}.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local nxt = tat + interval
if nxt - now > capacity then
  return {0, 0, math.ceil(nxt - now - capacity), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
return {1, math.floor((capacity - (nxt - now)) / interval), 0, math.ceil(nxt - now)}
`)

// RedisOptions configure a Redis store.
type RedisOptions struct {
	Client redis.Scripter
	// Prefix names the limit: every ferry with the same prefix and bucket
	// shares the buckets (the chain uses "ferry:ratelimit:<route>:<n>:").
	Prefix string
	// Fallback decides while Redis fails (fail open to a per-process
	// limit, as Envoy's global rate limit fails open by default).
	Fallback *Local
	Logger   hclog.Logger
	Counters *filter.Counters // "store_error" counts the requests decided by Fallback
	Now      func() time.Time // default time.Now; times the retry backoff
}

// Redis is one limit shared by every ferry through Redis. When a command
// fails or times out (the client's timeout, redis.timeout), the request is
// decided by the fallback local bucket, a warning is logged once, and Redis
// is tried again after a backoff (250ms doubling to 5s) so that a dead Redis
// does not cost every request a timeout. The first success logs the
// recovery and ends the fallback. Safe for concurrent use.
type Redis struct {
	o        RedisOptions
	log      hclog.Logger
	interval string
	capacity string
	asked    atomic.Uint64 // commands sent, for tests

	mu       sync.Mutex
	failing  bool
	retryAt  time.Time
	backoff  time.Duration
	inflight bool // one probe at a time while failing
}

// Backoff bounds while Redis fails.
const (
	minRedisBackoff = 250 * time.Millisecond
	maxRedisBackoff = 5 * time.Second
)

// NewRedis returns a Redis store for bucket b.
func NewRedis(b Bucket, o RedisOptions) *Redis {
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	t := b.interval(time.Microsecond)
	return &Redis{o: o, log: log, interval: strconv.FormatInt(t, 10), capacity: strconv.FormatInt(b.capacity(t), 10)}
}

// Take asks Redis, or the fallback while Redis fails. It never returns an
// error: failures are the fallback's business.
func (s *Redis) Take(ctx context.Context, key string) (Decision, error) {
	if !s.tryRedis() {
		s.o.Counters.Add(ReasonStoreError)
		return s.o.Fallback.Take(ctx, key)
	}
	d, err := s.take(ctx, key)
	if err != nil {
		if ctx.Err() != nil { // the client left: not Redis's fault
			s.release()
			return s.o.Fallback.Take(ctx, key)
		}
		s.failed(err)
		s.o.Counters.Add(ReasonStoreError)
		return s.o.Fallback.Take(ctx, key)
	}
	s.succeeded()
	return d, nil
}

func (s *Redis) take(ctx context.Context, key string) (Decision, error) {
	s.asked.Add(1)
	res, err := gcraScript.Run(ctx, s.o.Client, []string{s.o.Prefix + redisKey(key)}, s.interval, s.capacity).Int64Slice()
	if err != nil {
		return Decision{}, err
	}
	if len(res) != 4 {
		return Decision{}, errors.New("unexpected reply from the rate-limit script")
	}
	return Decision{Allowed: res[0] == 1, Remaining: int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond, Full: time.Duration(res[3]) * time.Microsecond}, nil
}

// tryRedis reports whether this request should ask Redis: always while it
// works; while it fails, one request at a time once the backoff is over.
func (s *Redis) tryRedis() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failing {
		return true
	}
	if s.inflight || s.o.Now().Before(s.retryAt) {
		return false
	}
	s.inflight = true
	return true
}

func (s *Redis) release() {
	s.mu.Lock()
	s.inflight = false
	s.mu.Unlock()
}

func (s *Redis) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = false
	if !s.failing {
		s.failing, s.backoff = true, minRedisBackoff
		s.log.Warn("rate limit store failing; limiting per process until Redis answers", "error", err)
	} else {
		s.backoff = min(2*s.backoff, maxRedisBackoff)
	}
	s.retryAt = s.o.Now().Add(s.backoff)
}

func (s *Redis) succeeded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = false
	if s.failing {
		s.failing = false
		s.log.Info("rate limit store answers again; the limit is shared again")
	}
}

// Failing reports whether the store is in fallback (for status pages and tests).
func (s *Redis) Failing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failing
}

// redisKey keeps Redis keys short: a long key (a header value) is hashed.
func redisKey(k string) string {
	if len(k) <= 64 {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return "sha256:" + hex.EncodeToString(sum[:])
}

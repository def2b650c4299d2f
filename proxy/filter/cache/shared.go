package cache

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"
)

// NewRedisClient returns a client for the top-level redis block, to be
// shared by every cache (and rate_limit) that uses it; the caller owns it
// and closes it on shutdown. It does not connect: a Redis that is down at
// start is a cache that runs on its memory tier until Redis answers.
func NewRedisClient(cfg config.Redis) (*redis.Client, error) {
	opts := &redis.Options{Addr: cfg.Address, DB: cfg.DB, DialTimeout: cfg.Timeout,
		ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout, MaxRetries: -1,
		ContextTimeoutEnabled: true, DisableIdentity: true,
		DialerRetries: 1} // a down Redis is skipped for retryAfter, not redialled per command
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cache: redis password_file: %w", err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	return redis.NewClient(opts), nil
}

// shared is the Redis tier behind memory. Layout, under prefix:
//
//	v:<url>               a hash: field <rest of the primary key> →
//	                      "<id>\n<vary names, comma-separated>"
//	o:<id>:<variant hash> an encoded object, with a TTL from its freshness
//
// Invalidating a url deletes its one v: key; the objects it pointed at
// become unreachable (a new v: entry gets a new random id) and expire.
// Every command is bounded by timeout. After a failure the tier is skipped
// for retryAfter, so a Redis that is down costs requests nothing; the
// memory tier keeps working. Safe for concurrent use.
type shared struct {
	rdb       redis.UniversalClient
	prefix    string
	timeout   time.Duration
	log       hclog.Logger
	now       func() time.Time
	downUntil atomic.Int64 // unix nanos; skip Redis before it
	down      atomic.Bool  // for logging transitions only
	errors    atomic.Uint64
	hits      atomic.Uint64
}

// retryAfter is how long a failed Redis is left alone.
const retryAfter = time.Second

func (s *shared) vKey(url string) string { return s.prefix + "v:" + url }

func (s *shared) oKey(id, variant string) string {
	h := sha256.Sum256([]byte(variant))
	return s.prefix + "o:" + id + ":" + hex.EncodeToString(h[:16])
}

// usable reports whether Redis may be asked now.
func (s *shared) usable() bool { return s.now().UnixNano() >= s.downUntil.Load() }

// failed records an error (redis.Nil is not one).
func (s *shared) failed(op string, err error) {
	s.errors.Add(1)
	s.downUntil.Store(s.now().Add(retryAfter).UnixNano())
	if !s.down.Swap(true) {
		s.log.Warn("redis tier unavailable; serving from memory", "op", op, "error", err, "retry_in", retryAfter)
	}
}

func (s *shared) succeeded() {
	if s.down.Swap(false) {
		s.log.Info("redis tier available again")
	}
}

func (s *shared) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(parent), s.timeout)
}

// get looks k up; variant computes the variant key from the stored Vary.
func (s *shared) get(parent context.Context, k key, variant func([]string) string) *object {
	if !s.usable() {
		return nil
	}
	ctx, cancel := s.ctx(parent)
	defer cancel()
	rec, err := s.rdb.HGet(ctx, s.vKey(k.url), k.rest).Result()
	if errors.Is(err, redis.Nil) {
		s.succeeded()
		return nil
	}
	if err != nil {
		s.failed("get", err)
		return nil
	}
	id, names, ok := strings.Cut(rec, "\n")
	if !ok {
		return nil
	}
	var vary []string
	if names != "" {
		vary = strings.Split(names, ",")
	}
	vk := variant(vary)
	b, err := s.rdb.Get(ctx, s.oKey(id, vk)).Bytes()
	if errors.Is(err, redis.Nil) {
		s.succeeded()
		return nil
	}
	if err != nil {
		s.failed("get", err)
		return nil
	}
	s.succeeded()
	o, err := decode(b)
	if err != nil || o.varyKey != vk {
		return nil
	}
	s.hits.Add(1)
	return o
}

// put stores o under k, reusing the resource's id when its Vary is the
// same, so that variants stored by other instances stay reachable.
func (s *shared) put(parent context.Context, k key, o *object) {
	if !s.usable() {
		return
	}
	ctx, cancel := s.ctx(parent)
	defer cancel()
	names := strings.Join(o.vary, ",")
	vkey := s.vKey(k.url)
	rec, err := s.rdb.HGet(ctx, vkey, k.rest).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		s.failed("put", err)
		return
	}
	id, oldNames, found := strings.Cut(rec, "\n")
	if !found || oldNames != names {
		id = newID()
	}
	ttl := o.ttl(s.now())
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.oKey(id, o.varyKey), o.encode(), ttl)
		p.HSet(ctx, vkey, k.rest, id+"\n"+names)
		p.ExpireNX(ctx, vkey, ttl)
		p.ExpireGT(ctx, vkey, ttl)
		return nil
	})
	if err != nil {
		s.failed("put", err)
		return
	}
	s.succeeded()
}

// invalidate deletes url's resources, or every url's starting with it when
// prefix (a SCAN: for the admin purge, not the request path).
func (s *shared) invalidate(parent context.Context, url string, prefix bool) (int, error) {
	if !prefix && !s.usable() {
		return 0, nil
	}
	ctx, cancel := s.ctx(parent)
	defer cancel()
	if !prefix {
		n, err := s.rdb.Del(ctx, s.vKey(url)).Result()
		if err != nil {
			s.failed("invalidate", err)
			return 0, err
		}
		return int(n), nil
	}
	pctx, pcancel := context.WithTimeout(context.WithoutCancel(parent), 30*time.Second)
	defer pcancel()
	n := 0
	iter := s.rdb.Scan(pctx, 0, globEscape(s.vKey(url))+"*", 1000).Iterator()
	for iter.Next(pctx) {
		d, err := s.rdb.Del(pctx, iter.Val()).Result()
		if err != nil {
			return n, err
		}
		n += int(d)
	}
	return n, iter.Err()
}

// globEscape escapes Redis glob metacharacters.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

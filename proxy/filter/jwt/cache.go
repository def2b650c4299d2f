package jwt

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
	"unsafe"

	jwtlib "github.com/golang-jwt/jwt/v5"
)

// The cache of verified tokens (Envoy's jwt_cache_config): clients send the
// same token on many requests, and checking its signature again costs more
// than the rest of the request (40–180 µs for RS256 and ES256). A filter
// keeps up to Options.CacheSize tokens that passed every check, keyed by the
// token's SHA-256, and answers a later request with the same token from
// what the verification established — but only while the parser would
// still accept it (Filter.usable): within the token's time window judged
// at the request's Now, and under the key set that verified it.

// tokenKey is the SHA-256 of a token: 32 bytes per entry whatever the
// token's size (up to MaxTokenBytes), and two tokens that differ in any
// byte never share an entry.
type tokenKey = [32]byte

// keyOf hashes the token in place: []byte(token) would copy it (up to 16
// KiB) on every request, and Sum256 only reads its argument.
func keyOf(token string) tokenKey {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// verified is what one token's verification established. It is immutable
// once built and shared by every request that presents the token.
type verified struct {
	// claims are handed to every request with the token (filter.SetClaims);
	// no one may modify them (filter.Claims says so, and its only reader,
	// rate_limit's claim:NAME key, only reads).
	claims jwtlib.MapClaims
	// keys is the key set the signature was checked with (nil for HS256,
	// whose secret is fixed for the filter's life), and kid the token's kid
	// that Keys was asked for: a hit asks again and compares, so that an
	// entry never outlives a rotated key.
	keys  *KeySet
	kid   string
	hs256 bool
	// from and until bound the instants at which the parser accepts the
	// token: not before nbf − leeway nor iat − leeway (zero: no bound), and
	// before exp + leeway — the parser's own comparisons, so a hit is
	// refused exactly when a fresh verification would be.
	from, until time.Time
	// allowed is require_claims' verdict and forward the forward_claims
	// values in Options.ForwardClaims order: both depend only on the claims
	// and the filter's options, so they are worked out once.
	allowed bool
	forward []forwarded
}

// forwarded is one forward_claims header's value; !ok: the claim is absent
// or cannot be sent as a header field, and only the client's field is
// removed.
type forwarded struct {
	value string
	ok    bool
}

// tokenCache is a bounded map from token to verified, split into shards
// that each have their own lock (requests on many goroutines), each evicting
// with CLOCK (second chance): O(1) amortised, a hit only sets a bit. Safe
// for concurrent use.
type tokenCache struct {
	shards []cacheShard
}

// The cache has one shard per minShardEntries entries, at most
// maxCacheShards: tokens fall into shards by hash, unevenly, so a small
// cache split further would evict from one shard while another has room.
const (
	maxCacheShards  = 16
	minShardEntries = 64
)

// cacheShard is padded to two cache lines, so that the locks of
// neighbouring shards are not on one line.
type cacheShard struct {
	mu    sync.Mutex
	index map[tokenKey]int32 // the slot of each key
	slots []cacheSlot        // grows to limit, then slots are reused
	free  []int32            // slots emptied by remove, filled first
	limit int
	hand  int // the CLOCK hand: the next slot considered for eviction
	_     [48]byte
}

type cacheSlot struct {
	key tokenKey
	v   *verified // nil only in a free slot
	ref bool      // used since the hand last passed
}

// newTokenCache returns a cache of at most size entries, or nil (no cache)
// when size <= 0. The shards' limits add up to size exactly.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	n := min(max(1, size/minShardEntries), maxCacheShards)
	c := &tokenCache{shards: make([]cacheShard, n)}
	for i := range c.shards {
		limit := size / n
		if i < size%n {
			limit++
		}
		c.shards[i] = cacheShard{index: make(map[tokenKey]int32), limit: limit}
	}
	return c
}

// shard picks by the key's first bytes: a SHA-256 is already uniform.
func (c *tokenCache) shard(k *tokenKey) *cacheShard {
	return &c.shards[binary.LittleEndian.Uint32(k[:4])%uint32(len(c.shards))]
}

// get returns the entry of k, or nil, and marks it used.
func (c *tokenCache) get(k *tokenKey) *verified {
	s := c.shard(k)
	s.mu.Lock()
	var v *verified
	if i, ok := s.index[*k]; ok {
		s.slots[i].ref = true
		v = s.slots[i].v
	}
	s.mu.Unlock()
	return v
}

// put stores v under k, evicting an entry when the shard is full: the first
// the hand finds unused since it last passed, or no longer valid at now.
// Another request that verified the same token meanwhile is replaced.
func (c *tokenCache) put(k *tokenKey, v *verified, now time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[*k]; ok {
		s.slots[i].v = v
		return
	}
	var i int32
	switch {
	case len(s.free) > 0:
		i = s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
	case len(s.slots) < s.limit:
		i = int32(len(s.slots))
		s.slots = append(s.slots, cacheSlot{})
	default:
		i = s.victim(now)
		delete(s.index, s.slots[i].key)
	}
	// A new entry starts without its bit: a token seen once goes before
	// the tokens that were used again.
	s.slots[i] = cacheSlot{key: *k, v: v}
	s.index[*k] = i
}

// victim advances the hand to a slot to reuse, clearing the bits it passes:
// within two turns of a full shard (free is empty, every slot holds an
// entry).
func (s *cacheShard) victim(now time.Time) int32 {
	for {
		i := s.hand
		s.hand = (s.hand + 1) % len(s.slots)
		sl := &s.slots[i]
		if !sl.ref || !now.Before(sl.v.until) {
			return int32(i)
		}
		sl.ref = false
	}
}

// remove drops k's entry if it still is v (a request that found v unusable
// must not drop a newer entry another request stored meanwhile).
func (c *tokenCache) remove(k *tokenKey, v *verified) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.index[*k]; ok && s.slots[i].v == v {
		delete(s.index, *k)
		s.slots[i] = cacheSlot{}
		s.free = append(s.free, i)
	}
}

// len is the number of entries.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.index)
		s.mu.Unlock()
	}
	return n
}

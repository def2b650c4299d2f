package jwt

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/filtertest"
)

var testSecret = []byte("a shared secret of at least thirty-two bytes")

// outcome is what a request's verification shows outside the filter.
type outcome struct {
	status   int // 0: the request goes on
	www      string
	upstream http.Header
	claims   map[string]any
}

func observe(f *Filter, auth ...string) outcome {
	r, a := run(f, auth...)
	o := outcome{upstream: r.Upstream, claims: filter.Claims(r)}
	if a != nil {
		o.status, o.www = a.Status, filtertest.AnswerHeader(a.Header, "WWW-Authenticate")
	}
	return o
}

func TestCacheHitAnswersAsVerification(t *testing.T) {
	k := keysOnce()
	fresh, _ := newTestFilter(t, func(o *Options) { o.HS256 = testSecret })
	cached, c := newTestFilter(t, func(o *Options) { o.HS256 = testSecret; o.CacheSize = 100 })
	claims := with(good(), "groups", []any{"a", "b"}, "n", 42, "obj", map[string]any{"x": 1}, "email", "u@example.com")
	for _, tc := range []struct {
		name   string
		method jwtlib.SigningMethod
		kid    string
		key    any
		claims jwtlib.MapClaims
		status int
	}{
		{"RS256", jwtlib.SigningMethodRS256, "r1", k.rsa, claims, 0},
		{"ES256", jwtlib.SigningMethodES256, "e1", k.ec, claims, 0},
		{"EdDSA", jwtlib.SigningMethodEdDSA, "d1", k.ed, claims, 0},
		{"EdDSA without kid", jwtlib.SigningMethodEdDSA, "", k.ed, claims, 0},
		{"HS256", jwtlib.SigningMethodHS256, "", testSecret, claims, 0},
		{"require_claims not met", jwtlib.SigningMethodES256, "e1", k.ec, with(good(), "role", "guest"), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := "Bearer " + sign(t, tc.method, tc.kid, tc.key, tc.claims)
			want := observe(fresh, tok)
			if want.status != tc.status {
				t.Fatalf("uncached: got status %d %q, want %d", want.status, want.www, tc.status)
			}
			before := cached.verifies.Load()
			miss := observe(cached, tok)
			hit := observe(cached, tok)
			if got := cached.verifies.Load() - before; got != 1 {
				t.Errorf("verifications for a miss and a hit: got %d, want 1", got)
			}
			for name, got := range map[string]outcome{"miss": miss, "hit": hit} {
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %+v, want what an uncached filter gives, %+v", name, got, want)
				}
			}
		})
	}
	if got := c.Get(ReasonForbidden); got != 2 {
		t.Errorf("forbidden: got %d, want 2 (a 403 from the cache is counted too)", got)
	}
	if got := c.Get(ReasonInvalid) + c.Get(ReasonExpired) + c.Get(ReasonMissing); got != 0 {
		t.Errorf("other rejections: got %d, want 0", got)
	}
}

func TestCacheExpiresWithTheToken(t *testing.T) {
	k := keysOnce()
	clock := &fakeClock{}
	clock.ns.Store(testNow.UnixNano())
	mod := func(size int) func(*Options) {
		return func(o *Options) { o.Now, o.CacheSize = clock.now, size }
	}
	fresh, cf := newTestFilter(t, mod(0))
	cached, cc := newTestFilter(t, mod(10))
	// exp at a whole second, as NumericDate has it; iat a minute ago.
	tok := "Bearer " + sign(t, jwtlib.SigningMethodES256, "e1", k.ec, good())
	exp := testNow.Add(time.Hour)

	both := func(what string, status int, reason string) {
		t.Helper()
		for name, f := range map[string]*Filter{"uncached": fresh, "cached": cached} {
			o := observe(f, tok)
			if o.status != status || !strings.Contains(o.www, reason) {
				t.Errorf("%s, %s: got %d %q, want %d %q", what, name, o.status, o.www, status, reason)
			}
		}
	}
	both("now", 0, "")
	verifies := cached.verifies.Load()
	clock.ns.Store(exp.Add(time.Minute - time.Nanosecond).UnixNano()) // the last instant within the leeway
	both("just before exp + leeway", 0, "")
	if got := cached.verifies.Load(); got != verifies || cached.cache.len() != 1 {
		t.Errorf("just before expiry: got %d verifications and %d entries, want a hit (%d, 1)", got, cached.cache.len(), verifies)
	}
	clock.ns.Store(exp.Add(time.Minute).UnixNano())
	both("at exp + leeway", 401, `error_description="token expired"`)
	both("after it", 401, `error_description="token expired"`)
	if cf.Get(ReasonExpired) != 2 || cc.Get(ReasonExpired) != 2 {
		t.Errorf("expired: got %d uncached and %d cached, want 2 each", cf.Get(ReasonExpired), cc.Get(ReasonExpired))
	}
	if n := cached.cache.len(); n != 0 {
		t.Errorf("entries after expiry: got %d, want 0 (an expired token is not kept)", n)
	}

	// A clock that steps back before iat − leeway: refused as the parser
	// refuses it, also when the token is cached.
	clock.ns.Store(testNow.UnixNano())
	both("back to now", 0, "")
	clock.ns.Store(testNow.Add(-2*time.Minute - time.Second).UnixNano())
	both("before iat − leeway", 401, "issued in the future")
}

func TestCacheSkipsTokensNotYetValid(t *testing.T) {
	k := keysOnce()
	clock := &fakeClock{}
	clock.ns.Store(testNow.UnixNano())
	f, c := newTestFilter(t, func(o *Options) { o.Now, o.CacheSize = clock.now, 10 })
	ahead := "Bearer " + sign(t, jwtlib.SigningMethodES256, "e1", k.ec, with(good(), "nbf", testNow.Add(2*time.Minute).Unix()))
	withinLeeway := "Bearer " + sign(t, jwtlib.SigningMethodES256, "e1", k.ec, with(good(), "nbf", testNow.Add(30*time.Second).Unix()))
	for i := 0; i < 2; i++ {
		if o := observe(f, ahead); o.status != 401 || !strings.Contains(o.www, "not valid yet") {
			t.Errorf("nbf beyond the leeway: got %d %q, want 401 not valid yet", o.status, o.www)
		}
		if o := observe(f, withinLeeway); o.status != 0 {
			t.Errorf("nbf within the leeway: got %d %q, want the request to go on", o.status, o.www)
		}
	}
	if got := f.verifies.Load(); got != 4 || f.cache.len() != 0 || c.Get(ReasonInvalid) != 2 {
		t.Errorf("got %d verifications, %d entries, %d invalid; want 4, 0, 2", got, f.cache.len(), c.Get(ReasonInvalid))
	}
	clock.advance(30 * time.Second) // nbf reached: now kept
	observe(f, withinLeeway)
	observe(f, withinLeeway)
	if got := f.verifies.Load(); got != 5 || f.cache.len() != 1 {
		t.Errorf("after nbf: got %d verifications and %d entries, want 5 and 1", got, f.cache.len())
	}
}

func TestCacheFollowsKeyRotation(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered: runs after the servers close
	k := keysOnce()
	srv, remote, clock, tick := startTestRemote(t, jwks(rsaJWK("r1", &k.rsa.PublicKey)))
	f, _ := newTestFilter(t, func(o *Options) { o.Keys, o.Now, o.CacheSize = remote, clock.now, 10 })
	refresh := func(doc []byte) {
		t.Helper()
		srv.set(doc, false)
		n := remote.Fetches()
		tick <- time.Now()
		waitFor(t, "the refresh", func() bool { return remote.Fetches() > n })
	}
	expect := func(what, tok string, status int, desc string) {
		t.Helper()
		if o := observe(f, tok); o.status != status || !strings.Contains(o.www, desc) {
			t.Fatalf("%s: got %d %q, want %d %q", what, o.status, o.www, status, desc)
		}
	}

	signedA := "Bearer " + sign(t, jwtlib.SigningMethodRS256, "r1", k.rsa, good())
	expect("signed by A", signedA, 0, "")
	expect("signed by A again", signedA, 0, "")
	if got := f.verifies.Load(); got != 1 {
		t.Fatalf("verifications: got %d, want 1 (the second request is a hit)", got)
	}

	// The same kid now names key B: the cached token no longer verifies.
	refresh(jwks(rsaJWK("r1", &k.rsa2.PublicKey)))
	expect("signed by A after r1 became key B", signedA, 401, "invalid signature")
	expect("signed by B as r1", "Bearer "+sign(t, jwtlib.SigningMethodRS256, "r1", k.rsa2, good()), 0, "")

	// Back to A, cached again; then the URL serves only B under another
	// kid: A's token names a kid the set no longer has.
	refresh(jwks(rsaJWK("r1", &k.rsa.PublicKey)))
	expect("signed by A, A back", signedA, 0, "")
	expect("signed by A, A back, a hit", signedA, 0, "")
	refresh(jwks(rsaJWK("r2", &k.rsa2.PublicKey)))
	expect("signed by A after A was retired", signedA, 401, "unknown signing key")
	expect("signed by B", "Bearer "+sign(t, jwtlib.SigningMethodRS256, "r2", k.rsa2, good()), 0, "")

	// A refresh that brings the same keys keeps the set, and the entries.
	signedB := "Bearer " + sign(t, jwtlib.SigningMethodRS256, "r2", k.rsa2, with(good(), "sub", "user-2"))
	expect("another token of B", signedB, 0, "")
	n := f.verifies.Load()
	refresh(jwks(rsaJWK("r2", &k.rsa2.PublicKey)))
	expect("B's token after an unchanged refresh", signedB, 0, "")
	if got := f.verifies.Load(); got != n {
		t.Errorf("verifications after an unchanged refresh: got %d, want %d (a hit)", got, n)
	}
}

func TestCacheKeepsTokensApart(t *testing.T) {
	k := keysOnce()
	f, c := newTestFilter(t, func(o *Options) { o.CacheSize = 10 })
	user := func(sub string) string {
		return "Bearer " + sign(t, jwtlib.SigningMethodRS256, "r1", k.rsa, with(good(), "sub", sub))
	}
	one, two := user("user-1"), user("user-2")
	for i := 0; i < 2; i++ {
		for tok, sub := range map[string]string{one: "user-1", two: "user-2"} {
			if o := observe(f, tok); o.status != 0 || o.upstream.Get("X-User-Id") != sub || o.claims["sub"] != sub {
				t.Errorf("%s: got %d, X-User-Id %q, claims %v", sub, o.status, o.upstream.Get("X-User-Id"), o.claims)
			}
		}
	}
	// One byte of the signature changed (not its last character, whose
	// low bits base64url may ignore), and of the payload.
	genuine := strings.TrimPrefix(one, "Bearer ")
	dot := strings.LastIndexByte(genuine, '.')
	for _, at := range []int{len(genuine) - 10, dot + 5, dot - 5} {
		b := []byte(genuine)
		b[at] = map[bool]byte{true: 'B', false: 'A'}[b[at] == 'A']
		if o := observe(f, "Bearer "+string(b)); o.status != 401 || o.claims != nil {
			t.Errorf("tampered at %d: got %d %q, want 401", at, o.status, o.www)
		}
	}
	if got := c.Get(ReasonInvalid); got != 3 {
		t.Errorf("invalid: got %d, want 3", got)
	}
	if got := f.cache.len(); got != 2 {
		t.Errorf("entries: got %d, want 2 (tampered tokens are not kept)", got)
	}
}

func TestCacheStaysWithinItsSize(t *testing.T) {
	k := keysOnce()
	for _, size := range []int{1, 5, 37, 130} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			f, c := newTestFilter(t, func(o *Options) { o.CacheSize = size })
			var tokens []string
			for i := 0; i < 3*size+5; i++ {
				tokens = append(tokens, "Bearer "+sign(t, jwtlib.SigningMethodEdDSA, "d1", k.ed, with(good(), "sub", fmt.Sprint("user-", i))))
			}
			for round := 0; round < 2; round++ {
				for i, tok := range tokens {
					if o := observe(f, tok); o.status != 0 || o.claims["sub"] != fmt.Sprint("user-", i) {
						t.Fatalf("token %d: got %d %q, claims %v", i, o.status, o.www, o.claims)
					}
					if n := f.cache.len(); n > size {
						t.Fatalf("entries: got %d, want at most %d", n, size)
					}
				}
			}
			if n := f.cache.len(); n != size && len(f.cache.shards) == 1 {
				t.Errorf("entries after %d tokens: got %d, want %d (full)", len(tokens), n, size)
			}
			if c.Get(ReasonInvalid) != 0 {
				t.Errorf("invalid: got %d", c.Get(ReasonInvalid))
			}
		})
	}
}

func TestNoCacheVerifiesEveryRequest(t *testing.T) {
	k := keysOnce()
	f, _ := newTestFilter(t, func(o *Options) { o.CacheSize = 0 })
	if f.cache != nil {
		t.Fatal("cache_size 0 built a cache")
	}
	tok := "Bearer " + sign(t, jwtlib.SigningMethodES256, "e1", k.ec, good())
	for i := 0; i < 5; i++ {
		if o := observe(f, tok); o.status != 0 {
			t.Fatalf("got %d %q", o.status, o.www)
		}
	}
	if got := f.verifies.Load(); got != 5 {
		t.Errorf("verifications: got %d, want 5", got)
	}
}

// TestCacheUnderConcurrency mixes hits, misses, evictions, refused tokens
// and key-set replacements on many goroutines (run with -race): every
// answer is the one an uncached filter gives, and the counters are exact.
func TestCacheUnderConcurrency(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered: runs after the servers close
	k := keysOnce()
	edKey := edJWK("d1", k.ed.Public().(ed25519.PublicKey))
	docs := [][]byte{jwks(edKey), jwks(edKey, ecJWK("e1", &k.ec.PublicKey))} // both verify d1
	srv := newJWKSServer(t, docs[0])
	tick := make(chan time.Time)
	remote := NewRemote(RemoteOptions{URL: srv.srv.URL, Tick: tick, Now: func() time.Time { return testNow }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	remote.Start(ctx)
	defer remote.Stop()
	f, c := newTestFilter(t, func(o *Options) { o.Keys, o.HS256, o.CacheSize = remote, testSecret, 4 })

	type request struct {
		auth   string
		status int
		reason string
	}
	var mix []request
	for i := 0; i < 6; i++ { // more good tokens than entries: evictions
		mix = append(mix, request{"Bearer " + sign(t, jwtlib.SigningMethodEdDSA, "d1", k.ed, with(good(), "sub", fmt.Sprint("u", i))), 0, ""})
	}
	hs := sign(t, jwtlib.SigningMethodHS256, "", testSecret, good())
	mix = append(mix,
		request{"Bearer " + hs, 0, ""},
		request{"Bearer " + hs[:len(hs)-8] + "AAAAAAAA", 401, ReasonInvalid},
		request{"Bearer " + sign(t, jwtlib.SigningMethodEdDSA, "d1", k.ed, with(good(), "exp", testNow.Add(-time.Hour).Unix())), 401, ReasonExpired},
		request{"Bearer " + sign(t, jwtlib.SigningMethodEdDSA, "d1", k.ed, with(good(), "role", "guest")), 403, ReasonForbidden},
		request{"", 401, ReasonMissing},
	)
	const workers, rounds = 8, 40
	want := map[string]uint64{}
	for _, m := range mix {
		want[m.reason] += workers * rounds
	}
	stop := make(chan struct{})
	refreshed := make(chan struct{})
	go func() { // replaces the key set (a new *KeySet each time) while requests run
		defer close(refreshed)
		for i := 0; ; i++ {
			srv.set(docs[i%2], false)
			select {
			case tick <- time.Now():
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for i := range mix {
					m := mix[(i+w+r)%len(mix)]
					var auth []string
					if m.auth != "" {
						auth = []string{m.auth}
					}
					if o := observe(f, auth...); o.status != m.status {
						errs <- fmt.Sprintf("%.40s…: got %d %q, want %d", m.auth, o.status, o.www, m.status)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	<-refreshed
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for _, reason := range Reasons {
		if got := c.Get(reason); got != want[reason] {
			t.Errorf("%s: got %d, want %d", reason, got, want[reason])
		}
	}
	if n := f.cache.len(); n > 4 {
		t.Errorf("entries: got %d, want at most 4", n)
	}
}

// The cache on its own: CLOCK's second chance, the free list, expired
// entries first.
func TestTokenCacheEviction(t *testing.T) {
	key := func(i int) *tokenKey { k := sha256.Sum256([]byte(fmt.Sprint(i))); return &k }
	entry := func(until time.Time) *verified { return &verified{until: until} }
	later := testNow.Add(time.Hour)
	c := &tokenCache{shards: []cacheShard{{index: map[tokenKey]int32{}, limit: 3}}}
	for i := 0; i < 3; i++ {
		c.put(key(i), entry(later), testNow)
	}
	c.get(key(0)) // used: survives the next eviction
	c.put(key(3), entry(later), testNow)
	if c.get(key(1)) != nil || c.get(key(0)) == nil || c.get(key(3)) == nil || c.len() != 3 {
		t.Errorf("after evicting one: got %d entries; want 1 gone, 0 and 3 kept", c.len())
	}
	// An entry no longer valid goes first, used or not.
	c.put(key(4), entry(testNow), testNow) // expires at once
	c.get(key(4))
	c.get(key(0))
	c.get(key(2))
	c.get(key(3))
	c.put(key(5), entry(later), testNow.Add(time.Second))
	if c.get(key(4)) != nil || c.len() != 3 {
		t.Errorf("got %d entries and the expired one %v, want it evicted", c.len(), c.get(key(4)))
	}
	// remove drops only the entry it was given, and frees its slot.
	v := c.get(key(5))
	c.remove(key(5), entry(later))
	if c.get(key(5)) != v {
		t.Error("remove dropped another request's entry")
	}
	c.remove(key(5), v)
	if c.get(key(5)) != nil || c.len() != 2 || len(c.shards[0].free) != 1 {
		t.Errorf("after remove: got %d entries, %d free slots", c.len(), len(c.shards[0].free))
	}
	c.put(key(6), entry(later), testNow)
	if len(c.shards[0].free) != 0 || len(c.shards[0].slots) != 3 || c.len() != 3 {
		t.Errorf("the free slot was not reused: %d free, %d slots", len(c.shards[0].free), len(c.shards[0].slots))
	}
	// Storing a key again replaces its entry in place.
	w := entry(later)
	c.put(key(6), w, testNow)
	if c.get(key(6)) != w || c.len() != 3 {
		t.Error("a second put of a key did not replace its entry")
	}
}

func TestTokenCacheShards(t *testing.T) {
	if n := unsafe.Sizeof(cacheShard{}); n%64 != 0 {
		t.Errorf("a shard is %d bytes, want a multiple of 64 (its own cache lines)", n)
	}
	for _, tc := range []struct{ size, shards int }{
		{-1, 0}, {0, 0}, {1, 1}, {127, 1}, {128, 2}, {1000, 15}, {1024, 16}, {100000, 16},
	} {
		size := tc.size
		c := newTokenCache(size)
		if size <= 0 {
			if c != nil {
				t.Errorf("size %d: got a cache", size)
			}
			continue
		}
		total := 0
		for i := range c.shards {
			if c.shards[i].limit < 1 {
				t.Errorf("size %d: shard %d holds nothing", size, i)
			}
			total += c.shards[i].limit
		}
		if total != size || len(c.shards) != tc.shards {
			t.Errorf("size %d: got %d shards holding %d", size, len(c.shards), total)
		}
	}
}

// BenchmarkVerifyCachedParallel: hits on every core, spread over 256
// tokens (and so over the shards), as many clients would send them.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	k := keysOnce()
	f, _ := newTestFilter(b, func(o *Options) { o.CacheSize = 1000 })
	var reqs []*filtertest.Request
	for i := 0; i < 256; i++ {
		tok := sign(b, jwtlib.SigningMethodES256, "e1", k.ec, with(good(), "sub", fmt.Sprint("user-", i)))
		reqs = append(reqs, filtertest.NewRequest("api", "192.0.2.1", "/", "Authorization", "Bearer "+tok))
		if a := f.Request(context.Background(), reqs[i]); a != nil {
			b.Fatal(a.Status)
		}
	}
	var next sync.Mutex
	start := 0
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		i := start
		start += 97
		next.Unlock()
		// Each goroutine its own copies: filtertest.Request is not safe for
		// concurrent use.
		mine := make([]*filtertest.Request, len(reqs))
		for j, r := range reqs {
			mine[j] = filtertest.NewRequest("api", "192.0.2.1", "/", "Authorization", r.Client.Get("Authorization"))
		}
		for pb.Next() {
			i = (i + 1) % len(mine)
			if a := f.Request(context.Background(), mine[i]); a != nil {
				b.Fatal(a.Status)
			}
		}
	})
	if got := f.verifies.Load(); got != 256 {
		b.Fatalf("got %d verifications, want 256 (every request in the loop a hit)", got)
	}
}

// TestCacheLookupsCounted: each request with a token is one lookup, a hit
// when answered from the cache, a miss when it was verified (first seen, or
// expired); requests without a token or with a bad one that was never
// cached are misses or not looked up, as they reach the cache or not.
func TestCacheLookupsCounted(t *testing.T) {
	k := keysOnce()
	clock := &fakeClock{}
	clock.ns.Store(testNow.UnixNano())
	var stats filter.Stats
	lookups := stats.For("api", "jwt", CacheResults...)
	f, _ := newTestFilter(t, func(o *Options) { o.Now, o.CacheSize, o.CacheLookups = clock.now, 10, lookups })
	tok := "Bearer " + sign(t, jwtlib.SigningMethodES256, "e1", k.ec, good())
	want := func(what string, hits, misses uint64) {
		t.Helper()
		if h, m := lookups.Get(CacheHit), lookups.Get(CacheMiss); h != hits || m != misses {
			t.Errorf("%s: %d hits and %d misses, want %d and %d", what, h, m, hits, misses)
		}
	}
	observe(f, tok)
	want("first request", 0, 1)
	observe(f, tok)
	observe(f, tok)
	want("two more", 2, 1)
	observe(f) // no token: refused before the cache
	want("no token", 2, 1)
	observe(f, "Bearer "+sign(t, jwtlib.SigningMethodES256, "e1", k.ec, with(good(), "sub", "other")))
	want("another token", 2, 2)
	clock.ns.Store(testNow.Add(2 * time.Hour).UnixNano())
	observe(f, tok) // cached, expired: verified again (and refused)
	want("expired", 2, 3)

	// Without a cache there is no lookup to count.
	none := stats.For("other", "jwt", CacheResults...)
	uncached, _ := newTestFilter(t, func(o *Options) { o.CacheSize, o.CacheLookups = 0, none })
	if got := observe(uncached, "Bearer "+sign(t, jwtlib.SigningMethodES256, "e1", k.ec, good())); got.status != 0 {
		t.Fatalf("cache_size 0: status %d", got.status)
	}
	if h, m := none.Get(CacheHit), none.Get(CacheMiss); h != 0 || m != 0 {
		t.Errorf("cache_size 0: %d hits and %d misses counted, want none", h, m)
	}
}

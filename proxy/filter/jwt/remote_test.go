package jwt

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

// jwksServer serves a key set that the test changes, or fails.
type jwksServer struct {
	mu   sync.Mutex
	doc  []byte
	fail bool
	hits atomic.Int64
	srv  *httptest.Server
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(s.doc)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) set(doc []byte, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc, s.fail = doc, fail
}

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// startTestRemote serves doc as a JWKS URL and starts a Remote on it, on a
// clock the test moves and a refresh tick it sends; both stop when t ends.
func startTestRemote(t *testing.T, doc []byte) (*jwksServer, *Remote, *fakeClock, chan time.Time) {
	t.Helper()
	srv := newJWKSServer(t, doc)
	clock := &fakeClock{}
	clock.ns.Store(testNow.UnixNano())
	tick := make(chan time.Time)
	remote := NewRemote(RemoteOptions{URL: srv.srv.URL, MinRefresh: 10 * time.Second, Refresh: time.Hour, Now: clock.now, Tick: tick})
	ctx, cancel := context.WithCancel(context.Background())
	remote.Start(ctx)
	t.Cleanup(func() {
		cancel()
		remote.Stop()
	})
	return srv, remote, clock, tick
}

func TestRemoteKeySet(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered: runs after the servers close
	k := keysOnce()
	srv, remote, clock, tick := startTestRemote(t, jwks(rsaJWK("r1", &k.rsa.PublicKey)))
	f, _ := newTestFilter(t, func(o *Options) { o.Keys = remote; o.Now = clock.now })

	accept := func(what string, kid string, key any) {
		t.Helper()
		if _, a := run(f, "Bearer "+sign(t, jwtlib.SigningMethodRS256, kid, key, good())); a != nil {
			t.Fatalf("%s: got %d %q, want the request to go on", what, a.Status, a.Header)
		}
	}
	refuse := func(what string, kid string, key any) {
		t.Helper()
		if _, a := run(f, "Bearer "+sign(t, jwtlib.SigningMethodRS256, kid, key, good())); a == nil || a.Status != 401 {
			t.Fatalf("%s: got %v, want 401", what, a)
		}
	}

	accept("first request, waiting for the first fetch", "r1", k.rsa)
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("fetches after start: got %d, want 1", got)
	}

	// Rotation: the issuer publishes r2; a token with kid r2 refreshes the set.
	srv.set(jwks(rsaJWK("r1", &k.rsa.PublicKey), rsaJWK("r2", &k.rsa2.PublicKey)), false)
	clock.advance(11 * time.Second)
	accept("a rotated key", "r2", k.rsa2)
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("fetches after an unknown kid: got %d, want 2", got)
	}

	// Another unknown kid at once: refused without a fetch (rate-limited).
	refuse("a forged kid", "forged", k.rsa)
	refuse("another forged kid", "forged2", k.rsa)
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("fetches after forged kids within MinRefresh: got %d, want still 2", got)
	}

	// The URL fails: the last good set stays.
	srv.set(nil, true)
	clock.advance(11 * time.Second)
	refuse("an unknown kid while the URL fails", "r3", k.rsa)
	if got := srv.hits.Load(); got != 3 {
		t.Errorf("fetches: got %d, want 3", got)
	}
	accept("a known kid while the URL fails", "r2", k.rsa2)
	accept("the other known kid", "r1", k.rsa)

	// A periodic refresh picks up a new set: r1 is retired.
	srv.set(jwks(rsaJWK("r2", &k.rsa2.PublicKey), edJWK("d1", k.ed.Public().(ed25519.PublicKey))), false)
	tick <- time.Now()
	waitFor(t, "the periodic fetch", func() bool { return remote.Fetches() >= 4 && remote.keys.Load().has("d1") })
	refuse("a retired kid (refresh rate-limited)", "r1", k.rsa)

	remote.Stop()
	// After Stop, requests are answered from the last set without waiting.
	clock.advance(time.Minute)
	refuse("unknown kid after stop", "r7", k.rsa)
	accept("known kid after stop", "r2", k.rsa2)
}

func TestRemoteNeverReachable(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered: runs after the servers close
	srv := newJWKSServer(t, nil)
	srv.set(nil, true)
	clock := &fakeClock{}
	remote := NewRemote(RemoteOptions{URL: srv.srv.URL, Now: clock.now, Tick: make(chan time.Time)})
	remote.Start(context.Background())
	defer remote.Stop()
	f, c := newTestFilter(t, func(o *Options) { o.Keys = remote })
	k := keysOnce()
	for i := 0; i < 3; i++ {
		if _, a := run(f, "Bearer "+sign(t, jwtlib.SigningMethodRS256, "r1", k.rsa, good())); a == nil || a.Status != 401 {
			t.Fatalf("got %v, want 401 without keys", a)
		}
	}
	if c.Get(ReasonInvalid) != 3 {
		t.Errorf("invalid: got %d, want 3", c.Get(ReasonInvalid))
	}
	if got := srv.hits.Load(); got > 2 {
		t.Errorf("fetches: got %d, want at most 2 (the first, then rate-limited)", got)
	}
}

func TestRemoteWaitEndsWithClient(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered: runs after the servers close
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	remote := NewRemote(RemoteOptions{URL: srv.URL, Tick: make(chan time.Time)})
	remote.Start(context.Background())
	defer remote.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client is gone
	if ks := remote.Keys(ctx, "r1"); ks != nil {
		t.Errorf("got %v, want no keys", ks)
	}
}

// waitFor polls cond until it holds, failing after a generous deadline
// (behaviour, not timing: the deadline only stops a hung test).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

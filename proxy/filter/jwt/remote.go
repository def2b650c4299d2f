package jwt

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Keys gives the filter the key set to verify a token with. Keys may wait
// (for a refresh of a remote key set, bounded by ctx).
type Keys interface {
	Keys(ctx context.Context, kid string) *KeySet
}

// Static is a key set that never changes (jwks_file).
type Static struct{ Set *KeySet }

// Keys returns the set.
func (s Static) Keys(context.Context, string) *KeySet { return s.Set }

// RemoteOptions configure a Remote key set.
type RemoteOptions struct {
	URL     string
	Client  *http.Client  // default: a client with a 10s timeout
	Refresh time.Duration // how often the set is fetched again; default 5m
	// MinRefresh is the shortest time between two fetches caused by
	// tokens with an unknown kid (a rotation): a flood of forged kids
	// cannot turn into a flood of fetches. Default 10s. A failed fetch is
	// retried after MinRefresh too (at most Refresh).
	MinRefresh time.Duration
	Logger     hclog.Logger
	Now        func() time.Time // default time.Now
	// Tick, when set, replaces the Refresh timer (tests drive refreshes).
	Tick <-chan time.Time
}

// Remote is a key set fetched from a URL in the background and refreshed:
// on a timer, and when a token names a kid the set does not hold (at most
// once per MinRefresh). When a fetch fails the last good set stays in use;
// when it brings the same keys, the same *KeySet stays in use.
// Its goroutine runs from Start until the context ends or Stop; Keys is safe
// for concurrent use.
type Remote struct {
	o     RemoteOptions
	log   hclog.Logger
	keys  atomic.Pointer[KeySet]
	wake  chan struct{}
	fetch atomic.Uint64 // fetches ended (successful or not), for tests

	mu        sync.Mutex
	lastStart time.Time     // when the last fetch started
	pending   chan struct{} // closed when the next fetch ends; nil: none awaited
	started   bool
	stopped   bool

	cancel context.CancelFunc
	done   chan struct{}
}

// NewRemote returns a Remote; Start fetches.
func NewRemote(o RemoteOptions) *Remote {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Refresh <= 0 {
		o.Refresh = 5 * time.Minute
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Remote{o: o, log: log.With("jwks_url", o.URL), wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Start runs the fetch loop until ctx ends or Stop is called; the first
// fetch starts at once. Requests that arrive before it ends wait for it.
func (k *Remote) Start(ctx context.Context) {
	ctx, k.cancel = context.WithCancel(ctx)
	k.mu.Lock()
	k.pending = make(chan struct{}) // the first fetch releases early requests
	k.started = true
	k.mu.Unlock()
	go k.run(ctx)
}

// Stop ends the fetch loop and waits for it. Safe to call more than once,
// and without Start.
func (k *Remote) Stop() {
	if k.cancel == nil {
		return
	}
	k.cancel()
	<-k.done
}

// Fetches is the number of fetches that ended, successful or not (a new set
// is in use when it counts its fetch).
func (k *Remote) Fetches() uint64 { return k.fetch.Load() }

// Keys returns the current set. When it has no key with kid, it asks for a
// refresh (unless one ran within MinRefresh) and waits for it, or for ctx.
func (k *Remote) Keys(ctx context.Context, kid string) *KeySet {
	ks := k.keys.Load()
	if ks != nil && (kid == "" || ks.has(kid)) {
		return ks
	}
	k.mu.Lock()
	wait := k.pending
	if wait == nil && k.started && !k.stopped && k.o.Now().Sub(k.lastStart) >= k.o.MinRefresh {
		wait = make(chan struct{})
		k.pending = wait
		select {
		case k.wake <- struct{}{}:
		default:
		}
	}
	k.mu.Unlock()
	if wait == nil {
		return ks // refreshed recently: the kid is unknown
	}
	select {
	case <-wait:
	case <-ctx.Done():
	}
	return k.keys.Load()
}

func (k *Remote) run(ctx context.Context) {
	defer close(k.done)
	defer k.o.Client.CloseIdleConnections()
	defer k.finish()
	var timer *time.Timer
	for {
		ok := k.fetchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		next := k.o.Refresh
		if !ok {
			next = min(k.o.MinRefresh, k.o.Refresh)
		}
		tick := k.o.Tick
		if tick == nil {
			if timer == nil {
				timer = time.NewTimer(next)
				defer timer.Stop()
			} else {
				timer.Reset(next)
			}
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-k.wake:
		}
	}
}

// finish releases every waiting request when the loop ends.
func (k *Remote) finish() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	if k.pending != nil {
		close(k.pending)
		k.pending = nil
	}
}

// fetchOnce fetches the set and installs it if it parses; it reports
// success. Requests waiting for a refresh are released either way.
func (k *Remote) fetchOnce(ctx context.Context) bool {
	k.mu.Lock()
	k.lastStart = k.o.Now()
	k.mu.Unlock()
	ks, err := k.get(ctx)
	if err == nil {
		if old := k.keys.Load(); old.sameKeys(ks) {
			ks = old // unchanged: tokens verified with it stay cached
		}
		k.keys.Store(ks)
		k.log.Debug("key set fetched", "keys", ks.Len())
	} else if ctx.Err() == nil {
		kept := "none"
		if old := k.keys.Load(); old != nil {
			kept = fmt.Sprint(old.Len())
		}
		k.log.Warn("cannot fetch key set; keeping the last good one", "error", err, "kept_keys", kept)
	}
	k.fetch.Add(1) // once its set is in place: tests wait for it
	k.mu.Lock()
	if k.pending != nil {
		close(k.pending)
		k.pending = nil
	}
	k.mu.Unlock()
	return err == nil
}

func (k *Remote) get(ctx context.Context) (*KeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.o.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.o.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	return ParseJWKS(body)
}

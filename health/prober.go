package health

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Target is one instance for the Prober to check. Targets are values; the
// Prober compares them to decide which probers to keep across Set calls.
type Target struct {
	Service  string
	Instance string // instance key, as in the Registry
	Address  string // host:port to probe
	// Path is the HTTP path to GET; "" means a TCP connect probe.
	Path               string
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	// State receives the verdicts. It is compared by identity.
	State *State
}

// Fallback probe settings, used while Consul is unreachable for a service that
// has no health_check block.
const (
	FallbackInterval           = 5 * time.Second
	FallbackTimeout            = 2 * time.Second
	FallbackHealthyThreshold   = 1
	FallbackUnhealthyThreshold = 2
)

// Prober runs one active-check loop per Target. It is safe for concurrent use.
type Prober struct {
	log    hclog.Logger
	client *http.Client
	dialer net.Dialer
	// OnFailure, when set before Run, is called after every failed probe (for
	// metrics). It must not block.
	OnFailure func(service string)

	mu      sync.Mutex
	running map[probeKey]*probe
	runCtx  context.Context
	wg      sync.WaitGroup
}

type probeKey struct{ service, instance string }

type probe struct {
	target Target
	cancel context.CancelFunc
}

// NewProber returns a Prober that probes nothing until Set and Run are called.
func NewProber(logger hclog.Logger) *Prober {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Prober{
		log: logger,
		client: &http.Client{
			// Probes never follow redirects: a 3xx is itself an answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:               nil,
				DisableKeepAlives:   true,
				DisableCompression:  true,
				MaxIdleConnsPerHost: -1,
			},
		},
		running: make(map[probeKey]*probe),
	}
}

// Run runs the probers until ctx is done and returns once every one of them
// has exited. Set may be called before or during Run.
func (p *Prober) Run(ctx context.Context) error {
	p.mu.Lock()
	p.runCtx = ctx
	for _, pr := range p.running {
		p.startLocked(pr)
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	p.runCtx = nil
	p.mu.Unlock()
	p.wg.Wait()
	return ctx.Err()
}

// Set makes targets the set of instances to probe: probers for new or changed
// targets start, those for targets no longer listed stop (and their instance's
// active verdict returns to healthy), unchanged ones keep their history.
func (p *Prober) Set(targets []Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := make(map[probeKey]Target, len(targets))
	for _, t := range targets {
		want[probeKey{t.Service, t.Instance}] = t
	}
	for k, pr := range p.running {
		if t, ok := want[k]; ok && t == pr.target {
			continue
		}
		if pr.cancel != nil {
			pr.cancel()
		}
		pr.target.State.setActive(true)
		delete(p.running, k)
	}
	for k, t := range want {
		if _, ok := p.running[k]; ok {
			continue
		}
		pr := &probe{target: t}
		p.running[k] = pr
		if p.runCtx != nil {
			p.startLocked(pr)
		}
	}
}

func (p *Prober) startLocked(pr *probe) {
	ctx, cancel := context.WithCancel(p.runCtx)
	pr.cancel = cancel
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.loop(ctx, pr.target)
	}()
}

// loop probes one target on its interval, starting at a random point of the
// first interval so that instances are not probed in lockstep.
func (p *Prober) loop(ctx context.Context, t Target) {
	log := p.log.With("service", t.Service, "instance_id", t.Instance, "address", t.Address)
	timer := time.NewTimer(rand.N(t.Interval) + 1)
	defer timer.Stop()
	var successes, failures int
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := p.check(ctx, t)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
			if successes >= t.HealthyThreshold && t.State.setActive(true) {
				log.Info("active check passing again: instance back in rotation", "successes", successes)
			}
		} else {
			successes, failures = 0, failures+1
			if p.OnFailure != nil {
				p.OnFailure(t.Service)
			}
			msg := err.Error()
			t.State.checkError.Store(&msg)
			if failures >= t.UnhealthyThreshold && t.State.setActive(false) {
				log.Warn("active check failing: instance out of rotation", "failures", failures, "error", err)
			} else {
				log.Debug("active check failed", "failures", failures, "error", err)
			}
		}
		timer.Reset(t.Interval)
	}
}

// check runs one probe: an HTTP GET answered 2xx or 3xx, or a TCP connect.
func (p *Prober) check(ctx context.Context, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	if t.Path == "" {
		c, err := p.dialer.DialContext(ctx, "tcp", t.Address)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Address+t.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "ferry-health-check")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("health check answered %d", resp.StatusCode)
	}
	return nil
}

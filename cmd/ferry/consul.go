package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
)

// liveDiscovery is the app's discovery: the current discovery.Manager, which a
// reload that changes the consul block replaces with one for the new
// settings. It has the Manager's method set (Watch, Sets, Changed, Ready,
// Run), applied to the current Manager, so the rest of the app never holds a
// Manager that may be replaced. All its methods are safe for concurrent use.
//
// While a replacement Manager has not answered for a service yet, Sets keeps
// returning the replaced Manager's last set for it, marked stale, so that a
// reload never empties a route.
type liveDiscovery struct {
	logger hclog.Logger
	// seed holds the last known sets read from the snapshot file at start
	// (nil without one); every Manager serves them, stale, until Consul
	// answers for their service.
	seed    map[string]*discovery.InstanceSet
	onError func(service string, err error) // passed to every Manager; may be nil
	// onUpdate is passed to every Manager as OnUpdate; may be nil. Set it
	// before Run (metrics.go).
	onUpdate func(service string)
	changed  chan struct{} // capacity 1, as Manager.Changed

	cur atomic.Pointer[generation]
	// fallback holds, per service, the replaced Manager's last known set
	// (marked stale), served until the current Manager answers for it; nil
	// when there is none.
	fallback atomic.Pointer[map[string]*discovery.InstanceSet]

	mu      sync.Mutex
	runCtx  context.Context // non-nil while Run accepts generations; guarded by mu
	running bool            // guarded by mu
	wg      sync.WaitGroup  // goroutines of every generation started by Run
}

// generation is one Manager with the Consul client it queries through.
type generation struct {
	m         *discovery.Manager
	transport *http.Transport // the client's, to close its idle connections on stop
	cancel    context.CancelFunc
}

// errSwitchWaitTimedOut is returned by replace when the new Manager did not
// answer for every service within the bound; the switch happened anyway.
var errSwitchWaitTimedOut = errors.New("consul: no first answer for every service in time; serving the last known instances meanwhile")

// newLiveDiscovery returns a liveDiscovery whose first Manager uses c.
func newLiveDiscovery(c config.Consul, logger hclog.Logger, onError func(service string, err error), seed map[string]*discovery.InstanceSet) (*liveDiscovery, error) {
	d := &liveDiscovery{logger: logger, onError: onError, changed: make(chan struct{}, 1), seed: seed}
	g, err := d.newGeneration(c)
	if err != nil {
		return nil, err
	}
	d.cur.Store(g)
	return d, nil
}

// newGeneration builds a Manager (not running, watching nothing) for c.
func (d *liveDiscovery) newGeneration(c config.Consul) (*generation, error) {
	// Discovery's share of the connection budget: all of it but the one
	// the local-service registration uses (newConsulClient).
	client, cfg, err := newConsulAPI(c, max(c.MaxWatchConnections-1, 1))
	if err != nil {
		return nil, err
	}
	m := discovery.New(discovery.Options{
		Health:              client.Health(),
		Cluster:             discovery.ConsulCluster{Client: client, Config: cfg},
		MaxWatchConnections: c.MaxWatchConnections,
		Seed:                d.takeSeed(),
		WaitTime:            c.WaitTime,
		AllowStale:          c.AllowStale,
		UseCache:            c.UseCache,
		Datacenter:          c.Datacenter,
		Logger:              d.logger,
		OnError:             d.onError,
		OnUpdate:            func(s string) { d.update(s) },
	})
	return &generation{m: m, transport: cfg.Transport}, nil
}

// newConsulAPI starts from Consul's environment (CONSUL_HTTP_ADDR, …) and
// lets the consul block override it. The client never has more than conns
// connections open to the agent (a hard cap under the agent's
// limits.http_max_conns_per_client: a query beyond it waits for a
// connection rather than open one), and keeps that many idle for reuse. It
// also returns the client's configuration as api.NewClient completed it:
// its Transport, whose idle connections the caller closes when it stops
// using the client, and what discovery.ConsulCluster needs for its own
// reads of the check list.
func newConsulAPI(c config.Consul, conns int) (*api.Client, *api.Config, error) {
	cc := api.DefaultConfig()
	cc.Transport.MaxConnsPerHost = conns
	cc.Transport.MaxIdleConnsPerHost = conns
	if c.Address != "" {
		cc.Address = c.Address
	}
	if c.Datacenter != "" {
		cc.Datacenter = c.Datacenter
	}
	if c.Token != "" {
		cc.Token = c.Token
	}
	if err := consulSecurity(c, cc); err != nil { // consul_tls.go
		return nil, nil, err
	}
	client, err := api.NewClient(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("consul client: %w", err)
	}
	return client, cc, nil
}

// takeSeed returns the snapshot's sets for the first Manager only: a Manager
// built on a reload starts from the running one's sets instead.
func (d *liveDiscovery) takeSeed() map[string]*discovery.InstanceSet {
	s := d.seed
	d.seed = nil
	return s
}

// update calls onUpdate, which may be set after the first Manager was built.
func (d *liveDiscovery) update(service string) {
	if d.onUpdate != nil {
		d.onUpdate(service)
	}
}

// Watch sets the services the current Manager watches (see Manager.Watch).
func (d *liveDiscovery) Watch(ws []discovery.Watch) { d.cur.Load().m.Watch(ws) }

// Sets returns the current Manager's sets, with the replaced Manager's last
// known set (stale) standing in for a service the current one has not
// answered for yet. Never nil; callers must not modify the map or the sets.
func (d *liveDiscovery) Sets() map[string]*discovery.InstanceSet {
	sets := d.cur.Load().m.Sets()
	fb := d.fallback.Load()
	if fb == nil {
		return sets
	}
	var merged map[string]*discovery.InstanceSet
	for name, s := range sets {
		if s.Known {
			continue
		}
		if f := (*fb)[name]; f != nil {
			if merged == nil {
				merged = maps.Clone(sets)
			}
			merged[name] = f
		}
	}
	if merged == nil {
		return sets
	}
	return merged
}

// Ready reports whether every watched service has a known set (see
// Manager.Ready; a stand-in set from a replaced Manager counts).
func (d *liveDiscovery) Ready() bool {
	for _, s := range d.Sets() {
		if !s.Known {
			return false
		}
	}
	return true
}

// Changed receives a value after every change the current Manager publishes
// and after every replacement; changes coalesce as with Manager.Changed.
func (d *liveDiscovery) Changed() <-chan struct{} { return d.changed }

func (d *liveDiscovery) notify() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// Run runs the current Manager, and every Manager that replaces it, until ctx
// is done; it returns only after all their goroutines exited.
func (d *liveDiscovery) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("discovery: Run is already running")
	}
	d.running, d.runCtx = true, ctx
	d.startLocked(d.cur.Load())
	d.mu.Unlock()

	<-ctx.Done()

	d.mu.Lock()
	d.runCtx = nil // no generation starts from now on, so Add never races Wait
	d.mu.Unlock()
	d.wg.Wait()
	d.mu.Lock()
	d.running = false
	d.mu.Unlock()
	return nil
}

// startLocked runs g's Manager and forwards its changes while g is current.
// d.mu must be held and d.runCtx non-nil.
func (d *liveDiscovery) startLocked(g *generation) {
	ctx, cancel := context.WithCancel(d.runCtx)
	g.cancel = cancel
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		if err := g.m.Run(ctx); err != nil {
			d.logger.Error("discovery stopped", "error", err)
		}
		// The blocking queries were cancelled; drop the keep-alive connections.
		g.transport.CloseIdleConnections()
	}()
	go func() {
		defer d.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-g.m.Changed():
				if d.cur.Load() != g {
					continue
				}
				if d.fallback.Load() != nil && g.m.Ready() {
					d.fallback.Store(nil)
				}
				d.notify()
			}
		}
	}()
}

// replace makes g (whose Manager already has its watches) the current
// generation: it starts g, waits until g has answered for every service or
// wait passed or ctx is done, then switches and stops the old generation.
// Services g has not answered for keep the old generation's last set, marked
// stale, until it does. It returns errSwitchWaitTimedOut when it switched
// without every first answer. Calls must not overlap (reloads are serialized).
func (d *liveDiscovery) replace(ctx context.Context, g *generation, wait time.Duration) error {
	d.mu.Lock()
	running := d.runCtx != nil
	if running {
		d.startLocked(g)
	}
	d.mu.Unlock()

	var err error
	if running && !g.m.Ready() {
		err = waitUntil(ctx, wait, g.m.Ready)
		if err != nil {
			err = errSwitchWaitTimedOut
		}
	}

	old := d.cur.Load()
	fb := make(map[string]*discovery.InstanceSet)
	for name, s := range d.Sets() { // the old view, stand-ins included
		if !s.Known {
			continue
		}
		stale := *s
		stale.Stale = true
		stale.Err = errors.New("consul settings changed: waiting for the first answer with the new settings")
		fb[name] = &stale
	}
	if len(fb) > 0 && !g.m.Ready() {
		d.fallback.Store(&fb)
	} else {
		d.fallback.Store(nil)
	}
	d.cur.Store(g)
	d.logger.Info("switched to the new Consul connection; stopping the old one's watchers", "services", len(old.m.Sets()))
	if old.cancel != nil {
		old.cancel() // its goroutines exit on their own; Run waits for them
	} else {
		old.transport.CloseIdleConnections()
	}
	d.notify()
	return err
}

// waitUntil polls cond every 10 ms until it holds (nil), or wait passed or
// ctx is done (an error).
func waitUntil(ctx context.Context, wait time.Duration, cond func() bool) error {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return context.DeadlineExceeded
		case <-tick.C:
		}
	}
	return nil
}

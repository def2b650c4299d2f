package discovery

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// HealthClient is the one Consul call discovery makes; *api.Health satisfies
// it. Implementations must be safe for concurrent use (one goroutine per
// watched service calls it) and must honour the context carried by the
// QueryOptions (q.Context()), which is how a stopped watcher cancels its
// in-flight blocking query.
type HealthClient interface {
	Service(service, tag string, passingOnly bool, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error)
}

// DefaultWaitTime is the blocking-query wait used when Options.WaitTime is zero.
const DefaultWaitTime = 30 * time.Second

// DefaultMaxWatchConnections is Options.MaxWatchConnections when zero: well
// under a Consul agent's default limits.http_max_conns_per_client (200).
const DefaultMaxWatchConnections = 64

// Options configures a Manager. The zero value of every field but Health is
// usable. Options is a plain value; the Manager keeps its own copy.
type Options struct {
	// Health answers the blocking queries; usually (*api.Client).Health().
	Health HealthClient
	// WaitTime is the longest a blocking query waits for a change; default 30s.
	WaitTime time.Duration
	// AllowStale lets any server answer (QueryOptions.AllowStale).
	AllowStale bool
	// UseCache asks the local agent's cache (QueryOptions.UseCache), which rides
	// Consul's streaming backend where the agent enables it.
	UseCache bool
	// Datacenter to query; "" means the agent's own.
	Datacenter string
	// MaxWatchConnections bounds the connections discovery holds open to
	// the agent at once; default DefaultMaxWatchConnections. While the
	// watched services fit (see PerServiceLimit), each has its own blocking
	// query; above, the Manager runs in scaled mode: one change detector
	// (two cluster-wide blocking queries, Cluster) and a few fetchers.
	MaxWatchConnections int
	// Cluster answers the change detector's queries; without it the
	// Manager stays in per-service mode whatever the number of services.
	Cluster ClusterClient
	// Seed holds sets to serve, marked stale, for the services of the first
	// Watch call that Consul has not answered for yet: the last known sets
	// read from a snapshot file at start. They count as known for Ready.
	// Later Watch calls do not use it (it only grows older).
	Seed map[string]*InstanceSet
	// Logger receives the watchers' logs; nil discards them.
	Logger hclog.Logger
	// OnError, when set, is called from a watcher goroutine with every failed
	// query, including an empty answer held as suspect (ErrNoLeader), but not
	// with context cancellation; e.g. to count errors. It must be safe for
	// concurrent use and must not block.
	OnError func(service string, err error)
	// OnUpdate, when set, is called from a watcher goroutine after every
	// answer that changed the service's published instances (the first
	// answer included; unchanged answers are not updates); e.g. to count
	// updates. It must be safe for concurrent use and must not block.
	OnUpdate func(service string)
}

// Watch names one service to watch: the Consul service name, an optional tag
// that instances must carry, the health policy (HealthPassing when "") and
// the failover datacenters, in order.
type Watch struct {
	Service, Tag string
	Health       string
	Failover     []string
}

func (w Watch) health() string {
	if w.Health == "" {
		return HealthPassing
	}
	return w.Health
}

// same reports whether two watches query the same thing.
func (w Watch) same(o Watch) bool {
	return w.Service == o.Service && w.Tag == o.Tag && w.health() == o.health() && slices.Equal(w.Failover, o.Failover)
}

// Manager keeps the instance sets of the watched services current and
// publishes them as one immutable snapshot. While the services fit in
// MaxWatchConnections it runs one blocking-query watcher per service; above
// it, a scaler (scaler.go). All its methods are safe for concurrent use.
type Manager struct {
	opts    Options
	log     hclog.Logger
	timing  timing
	changed chan struct{}

	// snap is the published map service → set. A published map and the sets
	// in it are never modified: every change stores a new map.
	snap atomic.Pointer[map[string]*InstanceSet]

	mu       sync.Mutex
	watchers map[string]*watcher // desired services; guarded by mu
	runCtx   context.Context     // non-nil while Run accepts new watchers; guarded by mu
	running  bool                // true from Run's start until its goroutines exited; guarded by mu
	wg       sync.WaitGroup      // watcher and scaler goroutines of the current Run
	scaler   *scaler             // non-nil while in scaled mode under Run; guarded by mu
	scaled   bool                // the mode the watched services ask for; guarded by mu
}

// New returns a Manager that watches nothing until Watch is called and
// queries nothing until Run is called.
func New(opts Options) *Manager {
	if opts.WaitTime <= 0 {
		opts.WaitTime = DefaultWaitTime
	}
	if opts.MaxWatchConnections <= 0 {
		opts.MaxWatchConnections = DefaultMaxWatchConnections
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	m := &Manager{
		opts:     opts,
		log:      opts.Logger,
		timing:   defaultTiming,
		changed:  make(chan struct{}, 1),
		watchers: make(map[string]*watcher),
	}
	empty := make(map[string]*InstanceSet)
	m.snap.Store(&empty)
	return m
}

// PerServiceLimit is the largest number of services watched with one
// blocking query each under a connection budget of max: two connections stay
// free for the local-service registration and one-off reads (failover).
func PerServiceLimit(max int) int { return max - 2 }

// Scaled reports whether the Manager is in scaled mode (change detector and
// fetchers) rather than one blocking query per service.
func (m *Manager) Scaled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.scaled
}

// Run runs the watchers until ctx is done and returns only after every
// goroutine it started has exited. Watch may be called before and during Run;
// services added during Run start at once. Run returns nil when ctx is done,
// and an error if Options.Health is nil or another Run is in progress. Run
// may be called again after it returned; the published sets are kept.
func (m *Manager) Run(ctx context.Context) error {
	if m.opts.Health == nil {
		return errors.New("discovery: no HealthClient in Options")
	}
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return errors.New("discovery: Run is already running")
	}
	m.running = true
	m.runCtx = ctx
	m.startModeLocked()
	m.mu.Unlock()

	<-ctx.Done()

	m.mu.Lock()
	m.runCtx = nil
	for _, w := range m.watchers {
		w.stop()
	}
	if m.scaler != nil {
		m.scaler.cancel()
		m.scaler = nil
	}
	m.mu.Unlock()
	// No goroutine can be started once runCtx is nil, so Add never races Wait;
	// running stays set until Wait returns, so no other Run can start meanwhile.
	m.wg.Wait()
	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
	return nil
}

// startModeLocked starts what the current mode runs: every watcher's
// goroutine, or the scaler. m.mu must be held and m.runCtx non-nil.
func (m *Manager) startModeLocked() {
	if m.scaled {
		m.startScalerLocked()
		return
	}
	for _, w := range m.watchers {
		m.startLocked(w)
	}
}

// Watch sets the desired services: it starts watchers for new ones, stops
// (cancelling the in-flight blocking query of) removed ones and restarts one
// whose Tag, Health or Failover changed, keeping the state of unchanged ones.
// A restarted watcher keeps serving the old set until its first answer, so
// that a reload never empties a route. A service named twice is watched
// once, as first given. When the number of services crosses the per-service
// limit, the Manager switches mode (scaled or per-service), each service
// keeping its published set. Watch is safe to call at any time from any
// goroutine; it does not wait for stopped watchers to exit (Run does).
func (m *Manager) Watch(ws []Watch) {
	desired, dups := planWatches(ws)
	for _, d := range dups {
		m.log.Warn("service listed twice; watching it as first given", "service", d)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.snap.Load()
	next := make(map[string]*InstanceSet, len(desired))
	changed := false
	for name, w := range m.watchers {
		if _, ok := desired[name]; !ok {
			w.stop()
			delete(m.watchers, name)
			changed = true
			m.log.Info("stopped watching service", "service", name)
		}
	}
	scaled := m.opts.Cluster != nil && len(desired) > PerServiceLimit(m.opts.MaxWatchConnections)
	switching := scaled != m.scaled
	if switching {
		m.switchModeLocked(scaled, old)
	}
	var added []string
	for name, want := range desired {
		cur, ok := m.watchers[name]
		set := old[name]
		if set == nil {
			set = m.seed(name)
			changed = true
		}
		next[name] = set
		if ok && cur.watch.same(want) {
			continue
		}
		if ok {
			cur.stop()
			m.log.Info("service watch changed (tag, health or failover); restarting it", "service", name, "tag", want.Tag)
		} else {
			m.log.Debug("watching service", "service", name, "tag", want.Tag)
		}
		w := m.newWatcher(want, set)
		m.watchers[name] = w
		added = append(added, name)
		if m.runCtx != nil && !m.scaled {
			m.startLocked(w)
		}
	}
	if m.scaled && m.scaler != nil && !switching {
		m.scaler.enqueue(added...)
	}
	m.opts.Seed = nil // only the first Watch is seeded
	if changed {
		m.snap.Store(&next)
		m.notify()
	}
}

// seed is the set a newly watched service starts with: the seeded one
// (from a snapshot) if any, else an unknown empty one.
func (m *Manager) seed(name string) *InstanceSet {
	if s := m.opts.Seed[name]; s != nil && s.Known {
		c := *s
		c.Service, c.Stale, c.FromSnapshot = name, true, true
		if c.Err == nil {
			c.Err = ErrFromSnapshot
		}
		return &c
	}
	return &InstanceSet{Service: name}
}

// ErrFromSnapshot is the Err of a set served from the snapshot file until
// Consul answers for its service.
var ErrFromSnapshot = errors.New("served from the snapshot file: Consul has not answered yet")

// switchModeLocked moves every watcher to the other mode: the running ones
// stop, and fresh watchers (so that no stopped goroutine shares their state)
// take over the published sets. m.mu must be held.
func (m *Manager) switchModeLocked(scaled bool, published map[string]*InstanceSet) {
	if scaled {
		m.log.Info("more services than per-service watches allow; switching to the change detector",
			"max_watch_connections", m.opts.MaxWatchConnections, "per_service_limit", PerServiceLimit(m.opts.MaxWatchConnections))
	} else {
		m.log.Info("services fit in per-service watches again; one blocking query per service")
	}
	for name, w := range m.watchers {
		w.stop()
		set := published[name]
		if set == nil {
			set = m.seed(name)
		}
		m.watchers[name] = m.newWatcher(w.watch, set)
	}
	if m.scaler != nil {
		m.scaler.cancel()
		m.scaler = nil
	}
	m.scaled = scaled
	if m.runCtx != nil {
		m.startModeLocked()
	}
}

// Sets returns the current snapshot: one *InstanceSet per watched service,
// with Known false until the service's first answer. It never returns nil.
// The map and the sets are shared and immutable: callers must not modify
// them. Sets is safe for concurrent use and takes no lock.
func (m *Manager) Sets() map[string]*InstanceSet {
	return *m.snap.Load()
}

// Changed returns a channel that receives a value after every published
// change (capacity 1, so changes coalesce: after a receive, read Sets for the
// latest state). Changes are new or removed services and sets whose
// instances, Known or Stale flag changed; refreshed Index, LastContact or Err
// of an otherwise unchanged set are stored without a signal. Safe for
// concurrent use; one consumer is expected.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Ready reports whether every watched service has a known set — a first
// answer from Consul, or a seeded one (true when nothing is watched). Safe
// for concurrent use.
func (m *Manager) Ready() bool {
	for _, s := range m.Sets() {
		if !s.Known {
			return false
		}
	}
	return true
}

func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// startLocked starts w's goroutine under the current Run. m.mu must be held
// and m.runCtx non-nil.
func (m *Manager) startLocked(w *watcher) {
	ctx, cancel := context.WithCancel(m.runCtx)
	w.cancel = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.run(ctx)
	}()
}

// publish stores set for w's service in a new snapshot, unless w has been
// stopped or replaced meanwhile, and signals Changed when signal is set. It
// reports whether the set was stored.
func (m *Manager) publish(w *watcher, set *InstanceSet, signal bool) bool {
	m.mu.Lock()
	if m.watchers[w.watch.Service] != w {
		m.mu.Unlock()
		return false
	}
	next := maps.Clone(*m.snap.Load())
	next[w.watch.Service] = set
	m.snap.Store(&next)
	m.mu.Unlock()
	if signal {
		m.notify()
	}
	return true
}

// planWatches turns the list given to Watch into the desired map, skipping
// empty names and keeping the first of duplicates, which it reports.
func planWatches(ws []Watch) (desired map[string]Watch, dups []string) {
	desired = make(map[string]Watch, len(ws))
	for _, w := range ws {
		if w.Service == "" {
			continue
		}
		if _, ok := desired[w.Service]; ok {
			dups = append(dups, w.Service)
			continue
		}
		desired[w.Service] = w
	}
	return desired, dups
}

package discovery

import (
	"context"
	"errors"
	"maps"
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

// Watch names one service to watch: the Consul service name and an optional
// tag that instances must carry.
type Watch struct{ Service, Tag string }

// Manager runs one blocking-query watcher per watched service and publishes
// their instance sets as one immutable snapshot. All its methods are safe for
// concurrent use.
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
	wg       sync.WaitGroup      // watcher goroutines of the current Run
}

// New returns a Manager that watches nothing until Watch is called and
// queries nothing until Run is called.
func New(opts Options) *Manager {
	if opts.WaitTime <= 0 {
		opts.WaitTime = DefaultWaitTime
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
	for _, w := range m.watchers {
		m.startLocked(w)
	}
	m.mu.Unlock()

	<-ctx.Done()

	m.mu.Lock()
	m.runCtx = nil
	for _, w := range m.watchers {
		w.stop()
	}
	m.mu.Unlock()
	// No watcher can be started once runCtx is nil, so Add never races Wait;
	// running stays set until Wait returns, so no other Run can start meanwhile.
	m.wg.Wait()
	m.mu.Lock()
	m.running = false
	m.mu.Unlock()
	return nil
}

// Watch sets the desired services: it starts watchers for new ones, stops
// (cancelling the in-flight blocking query of) removed ones and restarts one
// whose Tag changed, keeping the state of unchanged ones. A restarted watcher
// keeps serving the old tag's set until the new tag's first answer, so that a
// reload never empties a route. A service named twice is watched once, with
// its first Tag. Watch is safe to call at any time from any goroutine; it does
// not wait for stopped watchers to exit (Run does).
func (m *Manager) Watch(ws []Watch) {
	desired, dups := planWatches(ws)
	for _, d := range dups {
		m.log.Warn("service listed twice; watching it with its first tag", "service", d)
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
	for name, want := range desired {
		cur, ok := m.watchers[name]
		set := old[name]
		if set == nil {
			set = &InstanceSet{Service: name}
			changed = true
		}
		next[name] = set
		if ok && cur.watch == want {
			continue
		}
		if ok {
			cur.stop()
			m.log.Info("service tag changed; restarting its watch", "service", name, "tag", want.Tag)
		} else {
			m.log.Info("watching service", "service", name, "tag", want.Tag)
		}
		w := m.newWatcher(want, set)
		m.watchers[name] = w
		if m.runCtx != nil {
			m.startLocked(w)
		}
	}
	if changed {
		m.snap.Store(&next)
		m.notify()
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

// Ready reports whether every watched service has had a first answer from
// Consul (true when nothing is watched). Safe for concurrent use.
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

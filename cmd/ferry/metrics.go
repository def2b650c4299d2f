package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	prommetrics "github.com/armon/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/proxy"
	"github.com/ferry-proxy/ferry/proxy/certs"
	"github.com/ferry-proxy/ferry/proxy/core"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/cache"
	"github.com/ferry-proxy/ferry/proxy/filter/chain"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// Metrics design.
//
// Every metric goes through go-metrics into its Prometheus sink, which is
// registered on a private prometheus.Registry served at admin /metrics. A
// *metrics.Metrics is built here with an explicit configuration (no runtime
// collector, whose goroutine cannot be stopped; no hostname, no prefixes)
// and never the package-level global.
//
// Nothing calls go-metrics on the request path: its labelled calls allocate
// and the sink takes a lock per update. Requests add to proxy's atomic
// counters (proxy/stats.go), and rare events (Consul errors and updates,
// failed active checks) to small maps here. publish turns those cumulative
// totals into go-metrics calls — counter deltas and gauges — once a second
// (run) and at the start of every scrape, so a scrape is always exact.
//
// The duration histograms are the one exception to "everything through
// go-metrics": go-metrics has no histogram type (its samples become
// per-process summaries, which cannot be aggregated across a fleet). A
// small collector on the same registry (histograms.go) exports proxy's
// atomic histograms as Prometheus histograms at scrape time.
//
// The sink drops a series that was not updated for sinkExpiration. publish
// touches every series of every route and service currently routed on each
// pass (a zero delta counts), so only the series of routes and services that
// are gone expire — there is no stale-metric cleaner to maintain.

// sinkExpiration is how long the series of a removed route or service stay
// in /metrics.
const sinkExpiration = time.Minute

// publishInterval is how often run publishes.
const publishInterval = time.Second

// metricDef is one metric: its go-metrics key and what the README says.
type metricDef struct {
	key    []string
	kind   string // counter | gauge | histogram
	labels string // documentation only
	help   string
}

// name is the Prometheus name the sink gives the key.
func (d metricDef) name() string { return strings.Join(d.key, "_") }

func def(subsystem, noun, kind, labels, help string) metricDef {
	return metricDef{key: []string{"ferry", subsystem, noun}, kind: kind, labels: labels, help: help}
}

// metricSources is what publish reads. Fields are set once before run.
type metricSources struct {
	table    func() *route.Table                      // the routing table in use
	handler  *proxy.Handler                           // unrouted counters
	sets     func() map[string]*discovery.InstanceSet // discovery's snapshot
	reloads  func() (ok, failed uint64)               // nil when reloads are not counted
	panicked func(service string) bool                // nil: no panic modes
	failover func(service string) []string            // the service's failover datacenters; may be nil
	filters  *filter.Stats                            // route filters' counters; nil: none
	lookups  *filter.Stats                            // jwt filters' cache lookups; nil: none
	caches   *chain.Caches                            // route caches; nil: none
	certs    func() map[string]*certs.Store           // TLS listeners' certificates by listener; nil: none
	conns    func() map[string]int64                  // open client connections by listener; nil: none
	now      func() time.Time
}

// appMetrics owns ferry's metrics: the go-metrics instance, its Prometheus
// sink and private registry, the rare-event counters, and the publisher.
// Safe for concurrent use.
type appMetrics struct {
	m      *metrics.Metrics
	gather prometheus.Gatherer
	src    metricSources

	// Rare events, off the request path, by service: cumulative totals.
	evMu      sync.Mutex
	dErrors   map[string]uint64
	dUpdates  map[string]uint64
	ckFailure map[string]uint64
	panics    map[string]uint64

	// Publisher state; pubMu makes publishes one at a time.
	pubMu sync.Mutex
	pass  uint64
	last  map[string]*published // by series key
}

type published struct {
	total uint64
	pass  uint64 // the last pass that saw the series
}

// newAppMetrics builds the go-metrics instance and its Prometheus sink on a
// private registry. src is filled in by the caller before run or a scrape.
func newAppMetrics() (*appMetrics, error) {
	reg := prometheus.NewRegistry()
	sink, err := prommetrics.NewPrometheusSinkFrom(prommetrics.PrometheusOpts{
		Registerer: reg,
		Expiration: sinkExpiration,
		Name:       "ferry_go_metrics_sink",
	})
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus sink: %w", err)
	}
	conf := metrics.DefaultConfig("")
	conf.ServiceName = ""
	conf.HostName = ""
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableServiceLabel = false
	conf.EnableRuntimeMetrics = false // its collector goroutine cannot be stopped
	conf.EnableTypePrefix = false
	conf.FilterDefault = true
	m, err := metrics.New(conf, sink)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	am := &appMetrics{
		m:         m,
		gather:    helpGatherer{reg},
		src:       metricSources{now: time.Now},
		dErrors:   make(map[string]uint64),
		dUpdates:  make(map[string]uint64),
		ckFailure: make(map[string]uint64),
		panics:    make(map[string]uint64),
		last:      make(map[string]*published),
	}
	if err := reg.Register(histogramCollector{am}); err != nil {
		return nil, fmt.Errorf("metrics: histograms: %w", err)
	}
	return am, nil
}

// discoveryError is discovery.Options.OnError: it counts a failed query.
func (am *appMetrics) discoveryError(service string, _ error) { am.event(am.dErrors, service) }

// discoveryUpdate is discovery.Options.OnUpdate: it counts a changed answer.
func (am *appMetrics) discoveryUpdate(service string) { am.event(am.dUpdates, service) }

// checkFailed is health.Prober.OnFailure: it counts a failed probe.
func (am *appMetrics) checkFailed(service string) { am.event(am.ckFailure, service) }

// panicChange counts a service entering panic mode.
func (am *appMetrics) panicChange(service string, on bool) {
	if on {
		am.event(am.panics, service)
	}
}

func (am *appMetrics) event(m map[string]uint64, service string) {
	am.evMu.Lock()
	m[service]++
	am.evMu.Unlock()
}

func (am *appMetrics) eventTotal(m map[string]uint64, service string) uint64 {
	am.evMu.Lock()
	defer am.evMu.Unlock()
	return m[service]
}

// run publishes every publishInterval until ctx is done.
func (am *appMetrics) run(ctx context.Context) { every(ctx, publishInterval, am.publish) }

// ServeHTTP answers a scrape in the Prometheus text format, after publishing
// what was counted since the last pass.
func (am *appMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	am.publish()
	promhttp.HandlerFor(am.gather, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// publish hands every total to go-metrics: counter deltas since the last
// pass, current gauges, and the duration samples recorded meanwhile.
func (am *appMetrics) publish() {
	am.pubMu.Lock()
	defer am.pubMu.Unlock()
	am.pass++
	src := am.src
	if src.table == nil {
		return
	}
	t := src.table()

	t.EachRoute(func(r *route.Route) {
		rs := r.Stats()
		if rs == nil {
			return
		}
		spec := r.Spec()
		for i, class := range route.CodeClasses {
			am.counter(mRequests, rs.Requests(i),
				metrics.Label{Name: "route", Value: spec.Name},
				metrics.Label{Name: "service", Value: spec.Service},
				metrics.Label{Name: "code_class", Value: class})
		}
		am.counter(mBytes, rs.Bytes(),
			metrics.Label{Name: "route", Value: spec.Name},
			metrics.Label{Name: "service", Value: spec.Service})
	})
	if src.filters != nil {
		src.filters.Each(func(route, name, reason string, n uint64) {
			am.counter(mFilterRejections, n, metrics.Label{Name: "route", Value: route},
				metrics.Label{Name: "filter", Value: name}, metrics.Label{Name: "reason", Value: reason})
		})
	}
	if src.lookups != nil {
		src.lookups.Each(func(route, _, result string, n uint64) {
			am.counter(mJWTCacheLookups, n, metrics.Label{Name: "route", Value: route}, metrics.Label{Name: "result", Value: result})
		})
	}
	if src.certs != nil {
		now := src.now()
		for name, st := range src.certs() {
			s, l := st.Stats(), metrics.Label{Name: "listener", Value: name}
			am.counter(mCertReloadFailures, s.Failures, l)
			for _, c := range s.Certificates {
				am.gauge(mCertExpiry, float32(c.NotAfter.Sub(now).Seconds()), l, metrics.Label{Name: "cert_file", Value: c.CertFile})
			}
		}
	}
	if src.conns != nil {
		for name, n := range src.conns() {
			am.gauge(mListenerConns, float32(n), metrics.Label{Name: "listener", Value: name})
		}
	}
	if src.caches != nil {
		src.caches.Each(func(route string, c *cache.Filter) {
			s, l := c.Stats(), metrics.Label{Name: "route", Value: route}
			for _, r := range []struct {
				name string
				n    uint64
			}{{"hit", s.Hits}, {"miss", s.Misses}, {"stale", s.Stale}, {"revalidated", s.Revalidated}, {"bypass", s.Bypass}, {"collapsed", s.Collapsed}} {
				am.counter(mCacheRequests, r.n, l, metrics.Label{Name: "result", Value: r.name})
			}
			am.counter(mCacheStored, s.Stored, l)
			am.counter(mCacheEvictions, s.Evictions, l)
			am.gauge(mCacheBytes, float32(s.Bytes), l)
			am.counter(mCacheRedisErrors, s.RedisErrors, l)
		})
	}
	if src.handler != nil {
		hs := src.handler.Stats()
		for i, reason := range core.UnroutedReasons {
			am.counter(mUnrouted, hs.Unrouted(i), metrics.Label{Name: "reason", Value: reason})
		}
		am.counter(mHandoffs, hs.Handoffs())
		am.counter(mAcceptErrors, hs.AcceptErrors())
		am.gauge(mParked, float32(hs.ParkedConns()))
	}

	for _, svc := range t.Services() {
		name := svc.Name()
		l := metrics.Label{Name: "service", Value: name}
		if ss := svc.Stats(); ss != nil {
			am.counter(mAttempts, ss.Attempts(), l)
			am.counter(mRetries, ss.Retries(), l)
			am.counter(mEjections, ss.Ejections(), l)
			am.counter(mQueuedTotal, ss.Queued(), l)
			am.counterScaled(mQueueWait, uint64(ss.QueueWait()), 1e-9, l)
			am.counter(mQueueTimeouts, ss.QueueTimeouts(), l)
			am.counter(mQueueOverflows, ss.QueueOverflows(), l)
		}
		am.gauge(mQueued, float32(svc.Queued()), l)
		am.counter(mRetriesDenied, svc.RetriesDenied(), l)
		am.counter(mCheckFailures, am.eventTotal(am.ckFailure, name), l)
		am.gauge(mInFlight, float32(svc.InFlight()), l)
		var healthy, ejected, drained, failing int
		ups := svc.Upstreams()
		for _, up := range ups {
			st := up.State()
			if st == nil {
				continue
			}
			if st.Available() {
				healthy++
			}
			if !st.EjectedUntil().IsZero() {
				ejected++
			}
			if !st.ActiveHealthy() {
				failing++
			}
			if st.Drained() {
				drained++
			}
		}
		am.gauge(mInstances, float32(len(ups)), l)
		am.gauge(mHealthy, float32(healthy), l)
		am.gauge(mEjected, float32(ejected), l)
		am.gauge(mDrained, float32(drained), l)
		am.gauge(mCheckFailing, float32(failing), l)
		am.counter(mPanics, am.eventTotal(am.panics, name), l)
		p := float32(0)
		if src.panicked != nil && src.panicked(name) {
			p = 1
		}
		am.gauge(mPanic, p, l)
	}

	if src.sets != nil {
		now := src.now()
		for name, set := range src.sets() {
			l := metrics.Label{Name: "service", Value: name}
			am.counter(mDiscoveryUpdates, am.eventTotal(am.dUpdates, name), l)
			am.counter(mDiscoveryErrors, am.eventTotal(am.dErrors, name), l)
			if !set.LastContact.IsZero() {
				am.gauge(mLastContact, float32(now.Sub(set.LastContact).Seconds()), l)
			}
			stale := float32(0)
			if set.Stale || !set.Known {
				stale = 1
			}
			am.gauge(mStale, stale, l)
			// Every registered instance; a set from an older snapshot file
			// lists the routable ones only.
			am.gauge(mRegistered, float32(max(len(set.All), len(set.Instances))), l)
			if src.failover != nil {
				for _, dc := range src.failover(name) {
					v := float32(0)
					if set.FailedOver && set.Datacenter == dc {
						v = 1
					}
					am.gauge(mFailover, v, l, metrics.Label{Name: "datacenter", Value: dc})
				}
			}
		}
	}

	if src.reloads != nil {
		ok, failed := src.reloads()
		am.counter(mReloads, ok)
		am.counter(mReloadFailures, failed)
	}

	for k, p := range am.last {
		if p.pass != am.pass {
			delete(am.last, k)
		}
	}
}

// counter adds to d's series the growth of total since the last pass (all
// of it when total went down: a new counter behind the same labels).
func (am *appMetrics) counter(d metricDef, total uint64, labels ...metrics.Label) {
	am.counterScaled(d, total, 1, labels...)
}

// counterScaled is counter for a total kept in other units: the growth is
// multiplied by scale (1e-9 for nanoseconds to seconds).
func (am *appMetrics) counterScaled(d metricDef, total uint64, scale float64, labels ...metrics.Label) {
	key := seriesKey(d, labels)
	p := am.last[key]
	if p == nil {
		p = &published{}
		am.last[key] = p
	}
	delta := total - p.total
	if total < p.total {
		delta = total
	}
	p.total, p.pass = total, am.pass
	// A zero delta still refreshes the series, so that it does not expire.
	am.m.IncrCounterWithLabels(d.key, float32(float64(delta)*scale), labels)
}

func (am *appMetrics) gauge(d metricDef, v float32, labels ...metrics.Label) {
	am.m.SetGaugeWithLabels(d.key, v, labels)
}

func seriesKey(d metricDef, labels []metrics.Label) string {
	var b strings.Builder
	b.WriteString(d.name())
	for _, l := range labels {
		b.WriteByte(0)
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(l.Value)
	}
	return b.String()
}

// helpGatherer puts the documented help text on ferry's metric families
// (the sink only knows help for pre-declared metrics, which cannot have
// labels that vary).
type helpGatherer struct{ g prometheus.Gatherer }

var metricHelp = func() map[string]string {
	m := make(map[string]string, len(allMetrics))
	for _, d := range allMetrics {
		m[d.name()] = d.help
	}
	return m
}()

func (h helpGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := h.g.Gather()
	for _, mf := range mfs {
		if help, ok := metricHelp[mf.GetName()]; ok {
			mf.Help = &help
		}
	}
	return mfs, err
}

// wireMetrics gives the app its metrics and connects their sources and the
// hooks of the components that count events (discovery's OnUpdate here, its
// OnError when the liveDiscovery is built, the prober's OnFailure).
func (a *app) wireMetrics(m *appMetrics) {
	a.metrics = m
	a.discovery.onUpdate = m.discoveryUpdate
	a.prober.OnFailure = m.checkFailed
	m.src = metricSources{
		table:   a.handler.Table,
		handler: a.handler,
		sets:    a.discovery.Sets,
		reloads: a.reloadCounts,
		filters: a.filterStats,
		lookups: a.jwtLookups,
		caches:  a.caches,
		certs: func() map[string]*certs.Store {
			if blocks := a.lc.blocks; blocks != nil {
				return blocks.Stores()
			}
			return nil
		},
		conns:    a.openConnections,
		now:      time.Now,
		panicked: func(service string) bool { return a.registry.Panic(service).Active() },
		failover: func(service string) []string {
			if c := a.liveConfig().Services[service]; c != nil {
				return c.Failover
			}
			return nil
		},
	}
}

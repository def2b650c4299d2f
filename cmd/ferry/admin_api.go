package main

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/proxy/filter/cache"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// The read-only admin API: /v1/routes, /v1/upstreams, /v1/listeners, /metrics, the status
// page at /, and /debug/pprof/ when the configuration enables it. Every
// answer is built from the routing table in use and discovery's snapshot;
// nothing here blocks the data plane.

//go:embed status.html
var statusPage []byte

// registerObservability adds the observability endpoints to the admin mux.
func (a *app) registerObservability(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/routes", a.handleRoutes)
	mux.HandleFunc("GET /v1/upstreams", a.handleUpstreams)
	mux.HandleFunc("GET /v1/listeners", a.handleListeners) // admin_listeners.go
	mux.HandleFunc("GET /v1/stats", a.handleStats)         // status.go
	mux.HandleFunc("GET /v1/events", a.handleEvents)       // status.go
	mux.HandleFunc("POST /v1/cache/purge", a.handlePurge)  // cachepurge.go
	a.registerDrain(mux)                                   // drain.go
	if a.metrics != nil {
		mux.Handle("GET /metrics", a.metrics)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		// The page loads nothing from elsewhere; say so to the browser.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:")
		w.Write(statusPage)
	})
	// Registered always and gated per request, so that a reload can turn
	// profiling on or off without rebinding the admin listener.
	mux.HandleFunc("/debug/pprof/", a.pprofGate(pprof.Index))
	mux.HandleFunc("/debug/pprof/cmdline", a.pprofGate(pprof.Cmdline))
	mux.HandleFunc("/debug/pprof/profile", a.pprofGate(pprof.Profile))
	mux.HandleFunc("/debug/pprof/symbol", a.pprofGate(pprof.Symbol))
	mux.HandleFunc("/debug/pprof/trace", a.pprofGate(pprof.Trace))
}

// pprofGate serves h only while the configuration sets pprof = true.
func (a *app) pprofGate(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.liveConfig().Pprof {
			http.Error(w, "pprof is disabled (set pprof = true in the configuration)", http.StatusNotFound)
			return
		}
		h(w, r)
	}
}

// routeJSON is one route in GET /v1/routes.
type routeJSON struct {
	Name        string `json:"name"`
	Host        string `json:"host"`
	PathPrefix  string `json:"path_prefix"`
	Service     string `json:"service"`
	StripPrefix bool   `json:"strip_prefix"`
	// Filters are the route's filters in the order they run; Backends its
	// traffic split (empty: all of it to Service); Headers its header
	// conditions; Cache its cache's figures when it has one.
	Filters  []string         `json:"filters"`
	Backends []backendJSON    `json:"backends"`
	Headers  []headerCondJSON `json:"headers"`
	Cache    *cacheJSON       `json:"cache,omitempty"`
}

type backendJSON struct {
	Service string `json:"service"`
	Tag     string `json:"tag"`
	Weight  int    `json:"weight"`
}

type headerCondJSON struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

type cacheJSON struct {
	Hits        uint64 `json:"hits"`
	Misses      uint64 `json:"misses"`
	Stale       uint64 `json:"stale"`
	Revalidated uint64 `json:"revalidated"`
	Bypass      uint64 `json:"bypass"`
	Stored      uint64 `json:"stored"`
	Evictions   uint64 `json:"evictions"`
	Bytes       int64  `json:"bytes"`
	Objects     int    `json:"objects"`
	RedisErrors uint64 `json:"redis_errors"`
}

// handleRoutes answers GET /v1/routes: the routes of the table in use, in
// declaration order, host and prefix as routing matches them.
func (a *app) handleRoutes(w http.ResponseWriter, r *http.Request) {
	specs := a.handler.Table().Routes()
	out := struct {
		Routes []routeJSON `json:"routes"`
	}{Routes: make([]routeJSON, 0, len(specs))}
	caches := map[string]*cache.Filter{}
	a.caches.Each(func(route string, c *cache.Filter) { caches[route] = c })
	for _, s := range specs {
		rj := routeJSON{
			Name: s.Name, Host: s.Host, PathPrefix: s.PathPrefix, Service: s.Service, StripPrefix: s.StripPrefix,
			Filters: []string{}, Backends: []backendJSON{}, Headers: []headerCondJSON{},
		}
		if s.Filters != nil {
			rj.Filters = append(rj.Filters, s.Filters.Names...)
		}
		for _, b := range s.Backends {
			rj.Backends = append(rj.Backends, backendJSON{Service: b.Service, Tag: b.Tag, Weight: b.Weight})
		}
		for _, h := range s.Headers {
			rj.Headers = append(rj.Headers, headerCondJSON{Name: h.Name, Values: h.Values})
		}
		if c := caches[s.Name]; c != nil {
			st := c.Stats()
			rj.Cache = &cacheJSON{Hits: st.Hits, Misses: st.Misses, Stale: st.Stale, Revalidated: st.Revalidated,
				Bypass: st.Bypass, Stored: st.Stored, Evictions: st.Evictions, Bytes: st.Bytes, Objects: st.Objects,
				RedisErrors: st.RedisErrors}
		}
		out.Routes = append(out.Routes, rj)
	}
	writeJSON(w, out)
}

// serviceJSON is one service in GET /v1/upstreams.
type serviceJSON struct {
	Name    string `json:"name"`
	Balance string `json:"balance"`
	// Known is false until Consul has answered for the service.
	Known bool `json:"known"`
	// Stale is true while queries fail and the last known set is served.
	Stale bool `json:"stale"`
	// Index is the X-Consul-Index of the last answer.
	Index uint64 `json:"index"`
	// LastContact is when Consul last answered (null: never).
	LastContact *time.Time `json:"last_contact"`
	// LastContactAge is the seconds since then (null: never).
	LastContactAge *float64 `json:"last_contact_age_seconds"`
	// Error is the last query error while Stale.
	Error string `json:"error"`
	// Datacenter the routable instances came from; FailedOver is true
	// while that is a failover datacenter (the local one has none).
	Datacenter string `json:"datacenter"`
	FailedOver bool   `json:"failed_over"`
	// FromSnapshot is true while the set comes from the snapshot file.
	FromSnapshot bool `json:"from_snapshot"`
	// HealthPolicy is the service's health setting: passing | warning.
	HealthPolicy string `json:"health_policy"`
	// Panic is true while the service is in panic mode: too few instances
	// pass ferry's own checks, so every routable one gets traffic.
	Panic     bool           `json:"panic"`
	InFlight  int64          `json:"in_flight"`
	Checked   bool           `json:"active_checks"`
	Healthy   int            `json:"healthy"`
	Instances []instanceJSON `json:"instances"`
}

// instanceJSON is one instance in GET /v1/upstreams.
type instanceJSON struct {
	ID      string   `json:"id"`
	Node    string   `json:"node"`
	Address string   `json:"address"`
	Port    int      `json:"port"`
	Weight  int      `json:"weight"`
	Tags    []string `json:"tags"`
	// ConsulStatus is Consul's view of the instance: passing, warning,
	// critical or maintenance.
	ConsulStatus string `json:"consul_status"`
	// Routable: the health policy lets traffic reach it (Consul's side;
	// Healthy adds ferry's own checks).
	Routable bool `json:"routable"`
	// Datacenter the instance is registered in.
	Datacenter string `json:"datacenter"`
	// ActiveCheck is "passing", "failing" or "none" (ferry does not probe it).
	ActiveCheck  string     `json:"active_check"`
	Ejected      bool       `json:"ejected"`
	EjectedUntil *time.Time `json:"ejected_until"`
	Ejections    int        `json:"ejections"`
	// Healthy: the proxy may send it new requests.
	Healthy  bool  `json:"healthy"`
	InFlight int64 `json:"in_flight"`
	instanceHistoryJSON
}

// handleUpstreams answers GET /v1/upstreams: per routed service, its
// instances as the table in use has them, with ferry's own view of their
// health, and discovery's state for the service.
func (a *app) handleUpstreams(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, struct {
		Services []serviceJSON `json:"services"`
	}{a.upstreams(time.Now())})
}

func (a *app) upstreams(now time.Time) []serviceJSON {
	t := a.handler.Table()
	sets := a.discovery.Sets()
	svcs := t.Services()
	out := make([]serviceJSON, 0, len(svcs))
	for _, svc := range svcs {
		out = append(out, a.serviceView(svc, sets[svc.Name()], now))
	}
	return out
}

func (a *app) serviceView(svc *route.Service, set *discovery.InstanceSet, now time.Time) serviceJSON {
	checked := a.probed(svc.Name(), svc.Stale())
	sj := serviceJSON{
		Name:      svc.Name(),
		Balance:   svc.Spec().Balance,
		Known:     svc.Known(),
		Stale:     svc.Stale(),
		InFlight:  svc.InFlight(),
		Checked:   checked,
		Instances: make([]instanceJSON, 0, len(svc.Upstreams())),
	}
	if set != nil {
		sj.Known, sj.Stale, sj.Index = set.Known, set.Stale, set.Index
		if !set.LastContact.IsZero() {
			lc := set.LastContact.UTC()
			age := now.Sub(set.LastContact).Seconds()
			sj.LastContact, sj.LastContactAge = &lc, &age
		}
		if set.Err != nil {
			sj.Error = set.Err.Error()
		}
		sj.Datacenter, sj.FailedOver, sj.FromSnapshot = set.Datacenter, set.FailedOver, set.FromSnapshot
	}
	sj.Panic = a.registry.Panic(svc.Name()).Active()
	sj.HealthPolicy = discovery.HealthPassing
	if c := a.liveConfig().Services[svc.Name()]; c != nil && c.Health != "" {
		sj.HealthPolicy = c.Health
	}
	ups := make(map[string]*route.Upstream, len(svc.Upstreams()))
	for _, up := range svc.Upstreams() {
		ups[up.Instance().Key()] = up
	}
	listed := make(map[string]bool)
	add := func(inst discovery.Instance, up *route.Upstream) {
		ij := a.instanceView(inst, up, checked, svc.Spec().Outlier.ConsecutiveFailures)
		if up == nil {
			if t := a.events.notRoutedSince(svc.Name(), inst); !t.IsZero() { // events.go
				t = t.UTC()
				ij.NotRoutedSince = &t
			}
		}
		if ij.Healthy {
			sj.Healthy++
		}
		sj.Instances = append(sj.Instances, ij)
	}
	if set != nil {
		for _, inst := range set.All {
			up := ups[inst.Key()]
			if up != nil && up.Instance().Datacenter != inst.Datacenter {
				up = nil // the same key in another datacenter
			}
			if up != nil {
				listed[inst.Key()] = true
			}
			add(inst, up)
		}
	}
	// Routable instances discovery has no full list for (an old snapshot).
	for _, up := range svc.Upstreams() {
		if !listed[up.Instance().Key()] && (set == nil || len(set.All) == 0) {
			add(up.Instance(), up)
		}
	}
	return sj
}

// instanceView is one instance in GET /v1/upstreams; up is its place in the
// routing table, nil when it is not routable.
func (a *app) instanceView(inst discovery.Instance, up *route.Upstream, checked bool, consecutiveFailures int) instanceJSON {
	ij := instanceJSON{
		ID: inst.ID, Node: inst.Node, Address: inst.Address, Port: inst.Port, Weight: inst.Weight,
		Tags: append([]string{}, inst.Tags...), ConsulStatus: inst.Status, Datacenter: inst.Datacenter,
		ActiveCheck: "none",
	}
	if ij.ConsulStatus == "" {
		ij.ConsulStatus = discovery.StatusPassing // a set from an older snapshot: routable ones only
	}
	if up == nil {
		return ij
	}
	ij.Routable, ij.Healthy = true, true
	if st := up.State(); st != nil {
		if checked {
			ij.ActiveCheck = "passing"
			if !st.ActiveHealthy() {
				ij.ActiveCheck = "failing"
			}
		} else if !st.ActiveHealthy() {
			ij.ActiveCheck = "failing" // a verdict from before checks stopped
		}
		if until := st.EjectedUntil(); !until.IsZero() {
			u := until.UTC()
			ij.Ejected, ij.EjectedUntil = true, &u
		}
		ij.Ejections = st.Ejections()
		ij.Healthy = st.Available()
		ij.InFlight = st.InFlight()
		ij.instanceHistoryJSON = instanceHistory(st, ij.Ejected, consecutiveFailures) // status.go
	}
	return ij
}

// probed reports whether ferry runs active checks on the service's
// instances: with a health_check block, or (TCP) while its set is stale —
// the rule serviceTargets applies.
func (a *app) probed(service string, stale bool) bool {
	if s := a.liveConfig().Services[service]; s != nil && s.HealthCheck != nil {
		return true
	}
	return stale
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

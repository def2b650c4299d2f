package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/ferry-proxy/ferry/config"
)

// Bounds on how long a reload waits for Consul before it swaps the table.
const (
	// newServiceWait bounds the wait for a first answer for services a reload
	// adds, so their routes start with instances rather than with 503s.
	newServiceWait = time.Second
	// consulSwitchWait bounds the wait for a replacement Manager's first
	// answers when the consul block changed; services still without one keep
	// their last known instances (stale) until it comes.
	consulSwitchWait = 5 * time.Second
)

// lifecycle is the app's reload and listener state. Its zero value is ready
// for newApp; run fills in the endpoints.
type lifecycle struct {
	// reloadMu serializes reloads with each other and with shutdown.
	reloadMu sync.Mutex
	stopping bool // set by beginShutdown; guarded by reloadMu

	// buildMu serializes table builds (route.Builder is single-threaded):
	// the table goroutine and reloads both build.
	buildMu       sync.Mutex
	builderClosed bool             // guarded by buildMu
	upstreamTLS   upstreamTLSCache // guarded by buildMu (upstream_tls.go)
	rebuilt       rebuildState     // guarded by buildMu (rebuild_delta.go)

	ok, failed atomic.Uint64 // reload outcomes, read by reloadCounts

	// levelFlag is the -log-level flag; when set it wins over log.level on
	// every reload, as it did at start.
	levelFlag string
	// runCtx is run's context, set before run starts anything; reloads stop
	// waiting for Consul when it is done.
	runCtx atomic.Pointer[context.Context]
	// consulWait overrides consulSwitchWait when positive (tests).
	consulWait time.Duration

	data, admin *endpoint    // set by run before the servers start
	blocks      *listenerSet // the listener blocks (listeners_tls.go); set by run
}

// errStopping is returned by reload once shutdown has begun.
var errStopping = errors.New("reload: ferry is shutting down")

// invalidConfigError is a reload refused because the new configuration does
// not load; Diags holds every problem.
type invalidConfigError struct{ Diags *config.Diagnostics }

func (e *invalidConfigError) Error() string {
	return "reload: invalid configuration:\n" + e.Diags.Error()
}

// reloadCounts returns how many reloads succeeded and failed since start.
// Safe for concurrent use (for the metrics and admin code).
func (a *app) reloadCounts() (ok, failed uint64) {
	return a.lc.ok.Load(), a.lc.failed.Load()
}

// beginShutdown waits for a reload in progress and refuses later ones.
func (a *app) beginShutdown() {
	a.lc.reloadMu.Lock()
	a.lc.stopping = true
	a.lc.reloadMu.Unlock()
}

// closeBuilder closes the builder once no build is running; later rebuilds
// are no-ops.
func (a *app) closeBuilder() {
	a.lc.buildMu.Lock()
	defer a.lc.buildMu.Unlock()
	a.lc.builderClosed = true
	a.builder.Close()
	a.filters.Load().close()
}

// reload loads the configuration at a.configPath again and, when it is
// valid, applies it: routes and services swap atomically, discovery watches
// follow the routes, changed listen/admin addresses are rebound and a changed
// consul block reconnects. On any error the running configuration stays and
// the error (an *invalidConfigError for a configuration that does not load)
// is logged and returned. Safe for concurrent use: reloads run one at a time.
func (a *app) reload(trigger string) error {
	a.lc.reloadMu.Lock()
	defer a.lc.reloadMu.Unlock()
	if a.lc.stopping {
		return errStopping
	}
	log := a.logger.Named("reload")
	start := time.Now()
	log.Info("reloading configuration", "trigger", trigger, "path", a.configPath)

	next, diags := config.Load(a.configPath)
	if diags.HasErrors() {
		a.lc.failed.Add(1)
		for _, line := range strings.Split(diags.Error(), "\n") {
			log.Error("invalid configuration", "diagnostic", line)
		}
		log.Error("reload failed; keeping the running configuration", "trigger", trigger, "problems", diags.Len())
		a.events.add(event{Time: time.Now(), Event: "reload_failed", Reason: "invalid configuration"}) // events.go
		return &invalidConfigError{Diags: diags}
	}
	for _, line := range strings.Split(diags.Error(), "\n") {
		if line != "" {
			log.Warn("configuration warning", "diagnostic", line)
		}
	}
	if a.lc.levelFlag != "" {
		next.Log.Level = a.lc.levelFlag
	}
	prev := a.liveConfig()
	if err := a.apply(log, prev, next); err != nil {
		a.lc.failed.Add(1)
		log.Error("reload failed; keeping the running configuration", "trigger", trigger, "error", err)
		a.events.add(event{Time: time.Now(), Event: "reload_failed", Reason: err.Error()}) // events.go
		return err
	}
	a.lc.ok.Add(1)
	changes := configChanges(prev, next) // reloadchanges.go
	if len(changes) == 0 {
		changes = []any{"changes", "none"}
	}
	log.Info("configuration reloaded", append([]any{"trigger", trigger, "routes", len(next.Routes), "took", time.Since(start).String()}, changes...)...)
	a.events.add(event{Time: time.Now(), Event: "reloaded", Reason: trigger})
	return nil
}

// apply switches from cur to next. Everything that can fail (binding new
// addresses, a new Consul client) is done first, so a failure changes nothing.
func (a *app) apply(log hclog.Logger, cur, next *config.Config) error {
	ctx := context.Background()
	if p := a.lc.runCtx.Load(); p != nil {
		ctx = *p
	}

	// Prepare.
	var dataLn, adminLn net.Listener
	var err error
	listenMoved := next.Listen != cur.Listen && a.lc.data != nil
	adminMoved := next.Admin != cur.Admin && a.lc.admin != nil
	if listenMoved && next.Listen != "" { // "": the listener blocks only
		if dataLn, err = listenData(next.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", next.Listen, err)
		}
	}
	if adminMoved && next.Admin != "" {
		if adminLn, err = net.Listen("tcp", next.Admin); err != nil {
			if dataLn != nil {
				dataLn.Close()
			}
			return fmt.Errorf("admin listen %s: %w", next.Admin, err)
		}
	}
	var blocks *listenerPlan
	if a.lc.blocks != nil {
		if blocks, err = a.lc.blocks.prepare(next); err != nil {
			closeIfSet(dataLn)
			closeIfSet(adminLn)
			return err
		}
	}
	filters, err := buildFilters(context.Background(), next, a.logger.Named("filter"), a.filterStats, a.jwtLookups, a.caches) // filters.go
	if err != nil {
		closeIfSet(dataLn)
		closeIfSet(adminLn)
		if blocks != nil {
			blocks.abort()
		}
		return err
	}
	var gen *generation
	if next.Consul != cur.Consul {
		if gen, err = a.discovery.newGeneration(next.Consul); err != nil {
			closeIfSet(dataLn)
			closeIfSet(adminLn)
			if blocks != nil {
				blocks.abort()
			}
			filters.close()
			return err
		}
	}

	// Commit. Watch the new services before the table names them, and keep
	// the old ones until it no longer does, so no route is ever without its set.
	watches := watchesOf(next)
	if gen != nil {
		log.Info("consul settings changed; reconnecting", "address", next.Consul.Address, "datacenter", next.Consul.Datacenter)
		gen.m.Watch(watches)
		wait := consulSwitchWait
		if a.lc.consulWait > 0 {
			wait = a.lc.consulWait
		}
		if err := a.discovery.replace(ctx, gen, wait); err != nil {
			log.Warn("switched Consul connection before every first answer", "error", err)
		}
	} else if added := addedServices(cur, next); len(added) > 0 {
		a.discovery.Watch(append(watchesOf(cur), watches...))
		_ = waitUntil(ctx, newServiceWait, func() bool {
			sets := a.discovery.Sets()
			for _, s := range added {
				if set := sets[s]; set == nil || !set.Known {
					return false
				}
			}
			return true
		})
	}
	oldFilters := a.filters.Swap(filters)
	a.current.Store(next)
	a.discovery.Watch(watches)
	a.rebuild()
	oldFilters.close() // requests in flight keep the chains they hold

	if listenMoved {
		a.lc.data.move(dataLn, next.ShutdownTimeout)
		to := next.Listen
		if dataLn != nil {
			to = dataLn.Addr().String()
		}
		log.Info("data plane moved", "from", cur.Listen, "to", to)
	}
	if blocks != nil {
		blocks.commit(next.ShutdownTimeout)
	}
	if adminMoved {
		a.lc.admin.move(adminLn, next.ShutdownTimeout)
		log.Info("admin API moved", "from", cur.Admin, "to", next.Admin)
	}
	if next.Log.Level != cur.Log.Level {
		a.logger.SetLevel(hclog.LevelFromString(next.Log.Level))
		log.Info("log level changed", "level", next.Log.Level)
	}
	if next.Log.Format != cur.Log.Format {
		log.Warn("log.format changed; it applies after a restart", "running", cur.Log.Format, "configured", next.Log.Format)
	}
	if next.Log.AccessLog != cur.Log.AccessLog {
		log.Warn("log.access_log changed; it applies after a restart", "running", cur.Log.AccessLog, "configured", next.Log.AccessLog)
	}
	if !localServiceEqual(cur.LocalService, next.LocalService) {
		log.Warn("local_service changed; it applies after a restart")
	}
	return nil
}

// addedServices lists the services next routes that cur does not.
func addedServices(cur, next *config.Config) []string {
	had := make(map[string]bool)
	for _, w := range watchesOf(cur) {
		had[w.Service] = true
	}
	var out []string
	for _, w := range watchesOf(next) {
		if !had[w.Service] {
			out = append(out, w.Service)
		}
	}
	return out
}

func localServiceEqual(a, b *config.LocalService) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Name != b.Name || a.ID != b.ID || a.Address != b.Address || a.Port != b.Port ||
		a.DeregisterDelay != b.DeregisterDelay || !slices.Equal(a.Tags, b.Tags) || len(a.Meta) != len(b.Meta) {
		return false
	}
	for k, v := range a.Meta {
		if bv, ok := b.Meta[k]; !ok || bv != v {
			return false
		}
	}
	if a.Check == nil || b.Check == nil {
		return a.Check == b.Check
	}
	return *a.Check == *b.Check
}

// reloadResponse is the JSON answer of POST /v1/reload.
type reloadResponse struct {
	Status      string           `json:"status"` // "ok" or "error"
	Error       string           `json:"error,omitempty"`
	Diagnostics []diagnosticJSON `json:"diagnostics,omitempty"`
}

type diagnosticJSON struct {
	Severity string `json:"severity"` // "error" or "warning"
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"column,omitempty"`
	Summary  string `json:"summary"`
	Detail   string `json:"detail,omitempty"`
}

// handleReload serves POST /v1/reload: 200 {"status":"ok"}; 422 with the
// diagnostics of an invalid configuration; 500 when a valid one could not be
// applied (an address in use); 503 while shutting down.
func (a *app) handleReload(w http.ResponseWriter, r *http.Request) {
	err := a.reload("admin API")
	resp := reloadResponse{Status: "ok"}
	code := http.StatusOK
	var invalid *invalidConfigError
	switch {
	case err == nil:
	case errors.As(err, &invalid):
		code = http.StatusUnprocessableEntity
		resp = reloadResponse{Status: "error", Error: "invalid configuration", Diagnostics: diagnosticsJSON(invalid.Diags)}
	case errors.Is(err, errStopping):
		code = http.StatusServiceUnavailable
		resp = reloadResponse{Status: "error", Error: err.Error()}
	default:
		code = http.StatusInternalServerError
		resp = reloadResponse{Status: "error", Error: err.Error(),
			Diagnostics: []diagnosticJSON{{Severity: "error", Summary: "Cannot apply configuration", Detail: err.Error()}}}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(resp)
}

func diagnosticsJSON(d *config.Diagnostics) []diagnosticJSON {
	out := make([]diagnosticJSON, 0, d.Len())
	for _, diag := range d.HCL() {
		j := diagnosticJSON{Severity: "error", Summary: diag.Summary, Detail: diag.Detail}
		if diag.Severity == hcl.DiagWarning {
			j.Severity = "warning"
		}
		if diag.Subject != nil {
			j.File, j.Line, j.Column = diag.Subject.Filename, diag.Subject.Start.Line, diag.Subject.Start.Column
		}
		out = append(out, j)
	}
	return out
}

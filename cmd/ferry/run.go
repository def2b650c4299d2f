package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy"
	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/chain"
	"github.com/ferry-proxy/ferry/proxy/route"
)

func runCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file or directory (required)")
	level := fs.String("log-level", "", "log level, overriding the config: trace|debug|info|warn|error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "ferry run: -config is required")
		return 2
	}
	cfg, warnings, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *level != "" {
		if hclog.LevelFromString(*level) == hclog.NoLevel {
			fmt.Fprintf(stderr, "ferry run: unknown -log-level %q (trace|debug|info|warn|error)\n", *level)
			return 2
		}
		cfg.Log.Level = *level
	}

	logger := newLogger(cfg.Log, stderr)
	for _, line := range strings.Split(warnings, "\n") {
		if line != "" {
			logger.Warn("configuration warning", "diagnostic", line)
		}
	}
	accessLog, closeAccessLog, err := openAccessLog(cfg.Log, stdout, stderr)
	if err != nil {
		logger.Error("cannot open access log", "path", cfg.Log.AccessLog, "error", err)
		return 1
	}
	defer closeAccessLog()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := newApp(cfg, *path, logger, accessLog)
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	a.lc.levelFlag = *level // keeps overriding log.level on reloads
	if err := a.run(ctx); err != nil {
		logger.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

// app wires ferry's components together and owns their goroutines.
type app struct {
	// cfg is the configuration ferry started with, never modified: for what
	// applies at start only (local_service, log format and access log). The
	// running configuration, which reloads replace, is liveConfig().
	cfg        *config.Config
	current    atomic.Pointer[config.Config] // see liveConfig
	configPath string
	logger     hclog.Logger
	lc         lifecycle // reloads, listeners (reload.go, listener.go)

	registry  *health.Registry
	discovery *liveDiscovery // the current discovery.Manager (consul.go)
	builder   *route.Builder
	handler   *proxy.Handler
	prober    *health.Prober
	consul    *api.Client
	metrics   *appMetrics     // metrics.go
	snapshot  *snapshotWriter // snapshot.go
	accessLog accesslog.Logger
	history   *history  // history.go: traffic for the status page
	events    *eventLog // events.go: recent state changes

	// The running configuration's route filters (filters.go) and their
	// rejection counters, which outlive reloads.
	filters     atomic.Pointer[routeFilters]
	filterStats *filter.Stats
	jwtLookups  *filter.Stats // the jwt filters' cache lookups
	caches      *chain.Caches
}

func newApp(cfg *config.Config, configPath string, logger hclog.Logger, accessLog accesslog.Logger) (*app, error) {
	consul, err := newConsulClient(cfg.Consul)
	if err != nil {
		return nil, err
	}
	m, err := newAppMetrics() // metrics.go
	if err != nil {
		return nil, err
	}
	disco, err := newLiveDiscovery(cfg.Consul, logger.Named("discovery"), m.discoveryError,
		loadSnapshot(cfg.Consul, logger.Named("snapshot"))) // snapshot.go
	if err != nil {
		return nil, err
	}
	registry := health.NewRegistry()
	a := &app{
		cfg:        cfg,
		configPath: configPath,
		logger:     logger,
		registry:   registry,
		discovery:  disco,
		builder:    route.NewBuilder(registry, logger.Named("proxy")),
		handler:    proxy.NewHandler(proxy.Options{Logger: logger.Named("proxy"), AccessLog: accessLog}),
		prober:     health.NewProber(logger.Named("health")),
		consul:     consul,
		accessLog:  accessLog,
		events:     newEventLog(),
	}
	a.history = newHistory(a.handler.Table)
	a.filterStats, a.jwtLookups, a.caches = &filter.Stats{}, &filter.Stats{}, &chain.Caches{}
	chain.SetRedisLogger(logger.Named("redis"))
	filters, err := buildFilters(context.Background(), cfg, logger.Named("filter"), a.filterStats, a.jwtLookups, a.caches)
	if err != nil {
		return nil, err
	}
	a.filters.Store(filters)
	a.current.Store(cfg)
	a.snapshot = newSnapshotWriter(a)
	a.wireMetrics(m)
	a.discovery.Watch(watchesOf(cfg))
	a.rebuild()
	return a, nil
}

// liveConfig returns the running configuration; safe for concurrent use.
func (a *app) liveConfig() *config.Config { return a.current.Load() }

// newConsulClient starts from Consul's environment (CONSUL_HTTP_ADDR, …) and
// lets the consul block override it. It is the local-service registration's
// client: one connection of consul.max_watch_connections.
func newConsulClient(c config.Consul) (*api.Client, error) {
	client, _, err := newConsulAPI(c, 1)
	return client, err
}

// rebuild builds a routing table from the running config and the current
// instance sets and swaps it in. The table goroutine and reloads call it;
// builds are serialized, and none runs once the builder is closed.
func (a *app) rebuild() {
	a.lc.buildMu.Lock()
	defer a.lc.buildMu.Unlock()
	if a.lc.builderClosed {
		return
	}
	a.rebuildLocked(a.discovery.Sets())
}

// rebuildLocked is rebuild from the given instance sets; buildMu is held.
func (a *app) rebuildLocked(sets map[string]*discovery.InstanceSet) {
	cfg := a.liveConfig()
	routes, services := a.lc.upstreamTLS.specs(cfg, a.filters.Load(), a.logger) // upstream_tls.go
	table := a.builder.Build(routes, services, sets)
	a.handler.Store(table)
	a.handler.SetEdge(edgeOf(cfg))   // trusted_proxies apply on reload too
	a.applyRebuilt(cfg, table, sets) // rebuild_delta.go
}

func (a *app) run(ctx context.Context) error {
	cfg := a.liveConfig()
	var dataLn, adminLn net.Listener
	var err error
	if cfg.Listen != "" { // "" when only listener blocks are configured
		if dataLn, err = listenData(cfg.Listen); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
	}
	if cfg.Admin != "" {
		adminLn, err = net.Listen("tcp", cfg.Admin)
		if err != nil {
			closeIfSet(dataLn)
			return fmt.Errorf("admin listen %s: %w", cfg.Admin, err)
		}
	}
	a.lc.blocks = newListenerSet(a.handler, a.logger) // listeners_tls.go
	blocks, err := a.lc.blocks.prepare(cfg)
	if err != nil {
		closeIfSet(dataLn)
		closeIfSet(adminLn)
		return err
	}
	a.lc.runCtx.Store(&ctx)
	a.lc.data = newEndpoint("data", func() server { return newDataServer(a.handler, a.liveConfig(), a.logger) }, a.logger)
	a.lc.admin = newEndpoint("admin", func() server { return newAdminServer(a, a.logger) }, a.logger)

	// Background components stop when bgCtx is cancelled, after the servers
	// have drained: discovery keeps instance sets fresh during the drain.
	bgCtx, cancelBg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	spawn(func() { a.prober.Run(bgCtx) })
	spawn(func() {
		if err := a.discovery.Run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.logger.Error("discovery stopped", "error", err)
		}
	})
	spawn(func() { a.tableLoop(bgCtx) })
	spawn(func() { a.metrics.run(bgCtx) })
	spawn(func() { a.snapshot.Run(bgCtx) })
	spawn(func() { a.panicLoop(bgCtx) })
	spawn(func() { a.watchStatus(bgCtx) })       // status.go
	spawn(func() { a.checkConsulAccess(bgCtx) }) // consul_tls.go
	a.startReloaders(bgCtx, &wg)
	leave := a.startLocalService()
	defer func() {
		leave()
		cancelBg()
		wg.Wait()
		a.closeBuilder()
	}()

	if dataLn != nil {
		a.lc.data.move(dataLn, 0)
		a.logger.Info("serving", "listen", dataLn.Addr().String(), "routes", len(cfg.Routes))
	}
	blocks.commit(0)
	if adminLn != nil {
		a.lc.admin.move(adminLn, 0)
		a.logger.Info("admin API", "listen", adminLn.Addr().String())
		warnIfExposed(a.logger, adminLn.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-a.lc.data.Errs():
	case serveErr = <-a.lc.admin.Errs():
	case serveErr = <-a.lc.blocks.Errs():
	}

	a.beginShutdown() // waits for a reload in progress; no reload from now on
	leave()           // deregister the local service and let other proxies notice before draining
	cfg = a.liveConfig()
	a.logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	blocksDone := make(chan error, 1)
	go func() { blocksDone <- a.lc.blocks.shutdown(shutdownCtx) }() // drains alongside the listen shorthand's
	if err := errors.Join(a.lc.data.shutdown(shutdownCtx), <-blocksDone); err != nil {
		a.logger.Warn("in-flight requests did not finish within shutdown_timeout; closing them", "error", err)
	}
	a.lc.admin.close()
	if serveErr != nil {
		return serveErr
	}
	a.logger.Info("stopped")
	return nil
}

// tableLoop rebuilds the routing table whenever discovery publishes a change.
// Changes are coalesced by the capacity-1 notification channel.
func (a *app) tableLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.discovery.Changed():
			a.rebuild()
			a.snapshot.changed()
		}
	}
}

// closeIfSet closes ln unless it is nil.
func closeIfSet(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}

func serve(s server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

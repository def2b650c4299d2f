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
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy"
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
	cfg, err := loadConfig(*path)
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
	if err := a.run(ctx); err != nil {
		logger.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}

// app wires ferry's components together and owns their goroutines.
type app struct {
	cfg        *config.Config
	configPath string
	logger     hclog.Logger

	registry  *health.Registry
	discovery *discovery.Manager
	builder   *proxy.Builder
	handler   *proxy.Handler
	prober    *health.Prober
}

func newApp(cfg *config.Config, configPath string, logger hclog.Logger, accessLog proxy.AccessLogger) (*app, error) {
	consul, err := newConsulClient(cfg.Consul)
	if err != nil {
		return nil, err
	}
	registry := health.NewRegistry()
	a := &app{
		cfg:        cfg,
		configPath: configPath,
		logger:     logger,
		registry:   registry,
		discovery: discovery.New(discovery.Options{
			Health:     consul.Health(),
			WaitTime:   cfg.Consul.WaitTime,
			AllowStale: cfg.Consul.AllowStale,
			UseCache:   cfg.Consul.UseCache,
			Datacenter: cfg.Consul.Datacenter,
			Logger:     logger.Named("discovery"),
		}),
		builder: proxy.NewBuilder(registry, logger.Named("proxy")),
		handler: proxy.NewHandler(proxy.Options{Logger: logger.Named("proxy"), AccessLog: accessLog}),
		prober:  health.NewProber(logger.Named("health")),
	}
	a.discovery.Watch(watchesOf(cfg))
	a.rebuild()
	return a, nil
}

// newConsulClient starts from Consul's environment (CONSUL_HTTP_ADDR, …) and
// lets the consul block override it.
func newConsulClient(c config.Consul) (*api.Client, error) {
	cc := api.DefaultConfig()
	if c.Address != "" {
		cc.Address = c.Address
	}
	if c.Datacenter != "" {
		cc.Datacenter = c.Datacenter
	}
	if c.Token != "" {
		cc.Token = c.Token
	}
	client, err := api.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return client, nil
}

// rebuild builds a routing table from the config and the current instance sets
// and swaps it in. Only the table goroutine (and newApp, before it starts) calls it.
func (a *app) rebuild() {
	routes, services := specsOf(a.cfg)
	sets := a.discovery.Sets()
	table := a.builder.Build(routes, services, sets)
	a.handler.Store(table)
	a.prober.Set(probeTargets(a.cfg, table, a.registry))
	forgetGoneInstances(a.registry, sets)
}

func (a *app) run(ctx context.Context) error {
	dataLn, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	var adminLn net.Listener
	if a.cfg.Admin != "" {
		adminLn, err = net.Listen("tcp", a.cfg.Admin)
		if err != nil {
			dataLn.Close()
			return fmt.Errorf("admin listen %s: %w", a.cfg.Admin, err)
		}
	}

	// Background components stop when bgCtx is cancelled, after the servers
	// have drained: discovery keeps instance sets fresh during the drain.
	bgCtx, cancelBg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		a.prober.Run(bgCtx)
	}()
	go func() {
		defer wg.Done()
		if err := a.discovery.Run(bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			a.logger.Error("discovery stopped", "error", err)
		}
	}()
	go func() {
		defer wg.Done()
		a.tableLoop(bgCtx)
	}()
	defer func() {
		cancelBg()
		wg.Wait()
		a.builder.Close()
	}()

	data := newDataServer(a.handler, a.logger)
	serveErr := make(chan error, 2)
	go func() { serveErr <- serve(data, dataLn) }()
	a.logger.Info("serving", "listen", dataLn.Addr().String(), "routes", len(a.cfg.Routes))

	var admin *http.Server
	if adminLn != nil {
		admin = newAdminServer(a, a.logger)
		go func() { serveErr <- serve(admin, adminLn) }()
		a.logger.Info("admin API", "listen", adminLn.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return err
	}

	a.logger.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := data.Shutdown(shutdownCtx); err != nil {
		a.logger.Warn("in-flight requests did not finish within shutdown_timeout; closing them", "error", err)
		data.Close()
	}
	if admin != nil {
		admin.Close()
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
		}
	}
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newDataServer(h http.Handler, logger hclog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       75 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

package main

import (
	"context"
	"net"
	"net/http"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy"
	"github.com/ferry-proxy/ferry/proxy/core"
)

// HTTP/2 server limits (Envoy's edge guidance), used by the h2 server of
// listener blocks with http2 = true (listeners_conn.go). The listen
// shorthand's server below refuses h2c.
const (
	http2MaxConcurrentStreams = 100
	http2StreamWindow         = 64 << 10
	http2ConnectionWindow     = 1 << 20
)

// server is what an endpoint runs: an *http.Server (admin) or a
// *proxy.Server (data plane).
type server interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
	Close() error
}

// newDataServer builds the data-plane server for one listener from the
// limits block (README "Security and limits"): ferry's fast lane, which
// hands what it does not serve itself to a net/http server running the
// proxy's Handler (or hands it everything when fast_lane = false). Limits
// and fast_lane apply to servers built after a change: at start and
// whenever the listen address is rebound.
func newDataServer(h *proxy.Handler, cfg *config.Config, logger hclog.Logger) *proxy.Server {
	return newServerCounting(h, cfg, logger, true)
}

// newServerCounting is newDataServer whose guard caps the connections at
// max_connections only when counts (see connSlots for the other case).
func newServerCounting(h *proxy.Handler, cfg *config.Config, logger hclog.Logger, counts bool) *proxy.Server {
	l := cfg.Limits
	maxConns := l.MaxConnections
	if !counts {
		maxConns = 0
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true) // no h2c: "Upgrade: h2c" is ignored, the preface refused
	fallback := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		// ReadTimeout and WriteTimeout stay 0: they bound a whole request
		// or response and would cut long uploads, downloads and event
		// streams. The guard bounds each pause instead.
		IdleTimeout:    l.IdleTimeout,
		MaxHeaderBytes: l.MaxHeaderBytes,
		// "OPTIONS *" goes to the handler (a 400) rather than being
		// answered by net/http behind the guard's back.
		DisableGeneralOptionsHandler: true,
		Protocols:                    &protocols,
		HTTP2:                        h2Limits(),
		ErrorLog:                     logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	s := proxy.NewServer(h, fallback, proxy.GuardOptions{
		MaxConnections:   maxConns,
		MaxHeaderCount:   l.MaxHeaderCount,
		ReadTimeout:      l.ReadTimeout,
		WriteIdleTimeout: l.WriteIdleTimeout,
	})
	s.SetFastLane(cfg.FastLane)
	logFileLimit(logger, l.MaxConnections)
	return s
}

// listenData opens the data-plane listener. Accepted connections get no TCP
// keep-alive probes (nginx's default): idle_timeout already closes an idle
// client connection, and the probes' four setsockopt calls were a tenth of
// the cost of accepting a connection.
func listenData(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}

// edgeOf is the proxy's hostile-input policy from the configuration.
func edgeOf(cfg *config.Config) core.Edge {
	return core.Edge{TrustedProxies: cfg.TrustedProxies}
}

// warnIfExposed logs a warning when the admin API listens on anything but a
// loopback address: it reveals the topology and can trigger reloads.
func warnIfExposed(logger hclog.Logger, addr net.Addr) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsLoopback() {
		return
	}
	logger.Warn("the admin API listens on a non-loopback address; anyone who can reach it can read routes and trigger reloads",
		"listen", addr.String())
}

// h2Limits are the HTTP/2 limits of every server ferry runs (README, "TLS
// and HTTP/2").
func h2Limits() *http.HTTP2Config {
	return &http.HTTP2Config{
		MaxConcurrentStreams:          http2MaxConcurrentStreams,
		MaxReceiveBufferPerStream:     http2StreamWindow,
		MaxReceiveBufferPerConnection: http2ConnectionWindow,
		MaxDecoderHeaderTableSize:     4 << 10,
		MaxEncoderHeaderTableSize:     4 << 10,
		MaxReadFrameSize:              16 << 10,
	}
}

// h2Served are h2Limits for a server that takes HTTP/2 connections (TLS
// listeners, h2c), with its idle and write-stall bounds.
func h2Served(l config.Limits) *http.HTTP2Config {
	c := h2Limits()
	// A client gone silent is found by a PING after the idle timeout's
	// share, rather than holding its streams forever.
	c.SendPingTimeout = l.IdleTimeout
	// A client that stops reading (write_idle_timeout, nginx's
	// send_timeout) is disconnected, as on HTTP/1.1; 0 means none.
	c.WriteByteTimeout = l.WriteIdleTimeout
	return c
}

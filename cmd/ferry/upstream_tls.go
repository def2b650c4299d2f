package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// upstreamTLSConfig builds a service's TLS client configuration (SPEC §12,
// service tls block): roots from ca_file, else the system's; the server
// name from server_name, else (left empty here) each instance's address,
// set per instance by the upstream pools; the client certificate for mTLS;
// TLS 1.2 at least, Go's defaults otherwise. Client sessions are cached so
// that a new connection to an instance resumes rather than handshakes in
// full.
func upstreamTLSConfig(t *config.UpstreamTLS) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// errUpstreamTLS fails every handshake of a service whose tls block could
// not be built (its files changed after validation): ferry fails closed,
// never falling back on cleartext or on other roots.
var errUpstreamTLS = errors.New("the service's tls block could not be loaded; see the log")

func failingTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		VerifyConnection: func(tls.ConnectionState) error {
			return errUpstreamTLS
		},
	}
}

// upstreamTLSCache holds the TLS configurations of one configuration:
// built when a new configuration is first routed, and the same pointers
// for every table built from it, so that a table rebuilt for a discovery
// change keeps the services' connections (route.Builder compares them).
// Only the table builder uses it (under buildMu).
type upstreamTLSCache struct {
	cfg     *config.Config
	configs map[string]*tls.Config
	// The specs last made, for (cfg, filters): a discovery change does not
	// change them, and at a thousand routes making them anew on every
	// change is work for nothing. Nobody modifies them (route.Builder
	// copies what it keeps).
	filters  *routeFilters
	routes   []route.RouteSpec
	services map[string]route.ServiceSpec
}

// specs is specsOf with the services' upstream TLS configurations.
func (c *upstreamTLSCache) specs(cfg *config.Config, filters *routeFilters, logger hclog.Logger) ([]route.RouteSpec, map[string]route.ServiceSpec) {
	if c.cfg == cfg && c.filters == filters && c.services != nil {
		return c.routes, c.services
	}
	routes, services := specsOf(cfg, filters)
	if c.cfg != cfg {
		c.cfg, c.configs = cfg, make(map[string]*tls.Config)
		for name, s := range cfg.Services {
			if s.TLS == nil {
				continue
			}
			tc, err := upstreamTLSConfig(s.TLS)
			if err != nil {
				logger.Error("service tls block cannot be loaded: its connections will fail", "service", name, "error", err)
				tc = failingTLSConfig()
			}
			c.configs[name] = tc
		}
	}
	for name, spec := range services {
		spec.TLS = c.configs[name]
		services[name] = spec
	}
	c.filters, c.routes, c.services = filters, routes, services
	return routes, services
}

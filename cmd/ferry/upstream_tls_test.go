package main

import (
	"crypto/tls"
	"os"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/internal/testcerts"
	"github.com/ferry-proxy/ferry/proxy/route"
)

func TestUpstreamTLSConfig(t *testing.T) {
	ca := testcerts.NewCA(t, "up")
	client := ca.Leaf("ferry", "ferry")
	cfg, err := upstreamTLSConfig(&config.UpstreamTLS{CAFile: ca.File, ServerName: "api.internal",
		CertFile: client.CertFile, KeyFile: client.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "api.internal" || cfg.RootCAs == nil ||
		len(cfg.Certificates) != 1 || cfg.InsecureSkipVerify {
		t.Fatalf("%+v", cfg)
	}
	if cfg, err := upstreamTLSConfig(&config.UpstreamTLS{}); err != nil || cfg.RootCAs != nil || cfg.ServerName != "" {
		t.Fatalf("defaults: system roots, the instance's address: %+v %v", cfg, err)
	}
}

// The TLS configurations are built once per configuration: a table rebuilt
// for a discovery change gets the same pointers (the Builder keeps the
// connections), a new configuration new ones, and an unreadable file a
// configuration that fails every handshake, never cleartext.
func TestUpstreamTLSCache(t *testing.T) {
	ca := testcerts.NewCA(t, "up")
	newConfig := func(caFile string) *config.Config {
		return &config.Config{
			Routes: []*config.Route{{Name: "r", PathPrefix: "/", Service: "s"}, {Name: "p", PathPrefix: "/p", Service: "plain"}},
			Services: map[string]*config.Service{
				"s":     {Name: "s", Protocol: "grpc", TLS: &config.UpstreamTLS{CAFile: caFile}},
				"plain": {Name: "plain"},
			},
		}
	}
	var c upstreamTLSCache
	logger := hclog.NewNullLogger()
	one := newConfig(ca.File)
	_, a := c.specs(one, nil, logger)
	_, b := c.specs(one, nil, logger)
	if a["s"].TLS == nil || a["s"].TLS != b["s"].TLS || a["plain"].TLS != nil {
		t.Fatalf("rebuild: %p %p, plain %p", a["s"].TLS, b["s"].TLS, a["plain"].TLS)
	}
	if a["s"].Protocol != route.ProtocolGRPC || a["plain"].Protocol != route.ProtocolHTTP1 {
		t.Fatalf("protocols %q %q", a["s"].Protocol, a["plain"].Protocol)
	}
	_, d := c.specs(newConfig(ca.File), nil, logger)
	if d["s"].TLS == a["s"].TLS {
		t.Fatal("a new configuration kept the old TLS configuration")
	}

	gone := ca.File + ".gone"
	if err := os.WriteFile(gone, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := newConfig(gone)
	os.Remove(gone) // after validation, before the build
	_, e := c.specs(cfg, nil, logger)
	if e["s"].TLS == nil || e["s"].TLS.VerifyConnection == nil {
		t.Fatalf("an unloadable tls block gave %+v", e["s"].TLS)
	}
}

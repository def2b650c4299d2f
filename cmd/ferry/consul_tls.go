package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
)

// consulSecurity applies the consul block's TLS and token settings to cc,
// which api.DefaultConfig filled from Consul's environment: an https://
// address or a tls block means TLS; each tls attribute set wins over its
// variable ($CONSUL_CACERT, $CONSUL_CLIENT_CERT, $CONSUL_CLIENT_KEY,
// $CONSUL_TLS_SERVER_NAME), each one unset keeps it. The token, in
// Consul's own order: token, then token_file, then $CONSUL_HTTP_TOKEN_FILE,
// then $CONSUL_HTTP_TOKEN.
//
// Over HTTPS, the client's transport speaks HTTP/2 when the agent offers it
// (Go's transport with ForceAttemptHTTP2, which the consul/api transport
// sets): the blocking queries then share connections, as many streams on
// each as the agent allows (Go's server default, 250), and never more
// connections than the transport's MaxConnsPerHost (newConsulAPI).
func consulSecurity(c config.Consul, cc *api.Config) error {
	if c.TLS.Enabled {
		cc.Scheme = "https"
	}
	if c.TLS.CAFile != "" {
		cc.TLSConfig.CAFile, cc.TLSConfig.CAPath = c.TLS.CAFile, ""
	}
	if c.TLS.CertFile != "" {
		cc.TLSConfig.CertFile, cc.TLSConfig.KeyFile = c.TLS.CertFile, c.TLS.KeyFile
	}
	if c.TLS.ServerName != "" {
		cc.TLSConfig.Address = c.TLS.ServerName // what consul/api verifies and sends as SNI
	}
	switch {
	case c.Token != "":
		cc.Token, cc.TokenFile = c.Token, ""
	case c.TokenFile != "":
		token, err := readTokenFile(c.TokenFile)
		if err != nil {
			return err
		}
		cc.Token, cc.TokenFile = token, ""
	case cc.TokenFile != "": // $CONSUL_HTTP_TOKEN_FILE: say which file when it cannot be read
		if _, err := readTokenFile(cc.TokenFile); err != nil {
			return fmt.Errorf("%w (named by $%s)", err, api.HTTPTokenFileEnvName)
		}
	}
	return nil
}

// readTokenFile reads an ACL token from a file: one token, surrounding
// white space ignored. Errors never show the token.
func readTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("consul: cannot read the ACL token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("consul: the ACL token file %s is empty", path)
	}
	return token, nil
}

// errACLFiltered says that Consul answered but hid results: the token (or
// its absence) may not read what ferry asked for.
var errACLFiltered = errors.New("results filtered by Consul ACLs")

// checkConsulAccess asks Consul once for each routed service, as discovery
// will, and returns an error naming the cause when the agent refuses the
// token or hides results from it — which Consul, in default-deny mode,
// does silently: a service the token may not read looks like a service
// without instances. An unreachable agent is not an error here (ferry
// starts without Consul and discovery retries).
func checkConsulAccess(ctx context.Context, client *api.Client, services []string, hasToken bool, logger hclog.Logger) error {
	for _, name := range services {
		entries, meta, err := client.Health().Service(name, "", true, (&api.QueryOptions{AllowStale: true}).WithContext(ctx))
		var se api.StatusError
		switch {
		case errors.As(err, &se) && (se.Code == 401 || se.Code == 403):
			return fmt.Errorf("consul: the agent refused the ACL token (%s): set consul.token or token_file (or $CONSUL_HTTP_TOKEN/$CONSUL_HTTP_TOKEN_FILE) to a token that may read the routed services", strings.TrimSpace(se.Body))
		case err != nil:
			logger.Debug("cannot check Consul access yet", "service", name, "error", err)
			return nil
		case meta.ResultsFilteredByACLs:
			return fmt.Errorf("consul: service %q: %w: the ACL token may not read it (it needs service:read on it and node:read); set consul.token or token_file", name, errACLFiltered)
		case len(entries) == 0 && !hasToken && meta.DefaultACLPolicy == "deny":
			// Consul does not flag filtering for the anonymous token: an
			// empty answer under default-deny is what hiding looks like.
			return fmt.Errorf("consul: service %q: %w: no ACL token is configured and the agent's default ACL policy is deny; set consul.token or token_file (or $CONSUL_HTTP_TOKEN_FILE)", name, errACLFiltered)
		}
	}
	return nil
}

// checkConsulAccess runs checkConsulAccess at start for the routed services
// and logs what it finds; ferry keeps running either way.
func (a *app) checkConsulAccess(ctx context.Context) {
	cfg := a.liveConfig()
	var services []string
	for _, w := range watchesOf(cfg) {
		services = append(services, w.Service)
	}
	hasToken := cfg.Consul.Token != "" || cfg.Consul.TokenFile != "" ||
		os.Getenv(api.HTTPTokenEnvName) != "" || os.Getenv(api.HTTPTokenFileEnvName) != ""
	if len(services) == 0 {
		return
	}
	// A client of its own, whose connection is closed after the check:
	// the app's clients keep theirs for as long as they run.
	client, cc, err := newConsulAPI(cfg.Consul, 1)
	if err != nil {
		return // reported where the app's clients are built
	}
	defer cc.Transport.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := checkConsulAccess(ctx, client, services, hasToken, a.logger.Named("consul")); err != nil {
		a.logger.Named("consul").Error("Consul hides the routed services from ferry", "error", err)
	}
}

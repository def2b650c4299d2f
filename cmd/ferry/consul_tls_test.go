package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

const testManagementToken = "6ce2e9f4-6a24-4e44-8d7c-aaaaaaaaaaaa"

// noConsulEnv keeps the machine's Consul variables out of a test.
func noConsulEnv(t *testing.T) {
	for _, v := range []string{api.HTTPAddrEnvName, api.HTTPTokenEnvName, api.HTTPTokenFileEnvName, api.HTTPSSLEnvName,
		api.HTTPCAFile, api.HTTPCAPath, api.HTTPClientCert, api.HTTPClientKey, api.HTTPTLSServerName} {
		t.Setenv(v, "")
	}
}

// readOnlyToken creates a token that may read services and nodes only.
func readOnlyToken(t *testing.T, c *api.Client) string {
	t.Helper()
	pol, _, err := c.ACL().PolicyCreate(&api.ACLPolicy{Name: "read-services",
		Rules: `service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := c.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok.SecretID
}

func TestConsulOverTLSWithACLs(t *testing.T) {
	noConsulEnv(t)
	ca := testcerts.NewCA(t, "consul")
	server := ca.Leaf("consul-server", "server.dc1.consul", "localhost", "127.0.0.1")
	client := ca.Leaf("ferry-client", "ferry")
	agent := consultest.StartWith(t, consultest.Options{
		TLS:      &consultest.TLS{CAFile: ca.File, CertFile: server.CertFile, KeyFile: server.KeyFile, VerifyIncoming: true},
		ACLToken: testManagementToken,
	})
	mgmt := agent.Client()
	if err := mgmt.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 9000}); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(readOnlyToken(t, mgmt)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testLogWriter{t}})
	good := config.Consul{Address: "https://" + agent.HTTPSAddr, TokenFile: tokenFile,
		TLS: config.ConsulTLS{Enabled: true, CAFile: ca.File, CertFile: client.CertFile, KeyFile: client.KeyFile}}

	c, transport, err := newConsulAPI(good, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer transport.Transport.CloseIdleConnections()
	entries, _, err := c.Health().Service("web", "", false, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("over TLS with the token file: got %d entries, %v; want 1", len(entries), err)
	}
	if err := checkConsulAccess(context.Background(), c, []string{"web"}, true, logger); err != nil {
		t.Errorf("access check with a read token: %v", err)
	}
	// Which protocol the blocking queries ride (reported in the README).
	resp, err := (&http.Client{Transport: transport.Transport}).Get("https://" + agent.HTTPSAddr + "/v1/status/leader")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("consul/api over HTTPS speaks %s, want HTTP/2 (the README says the queries share connections)", resp.Proto)
	}

	for _, tc := range []struct {
		name string
		edit func(*config.Consul)
		want string
	}{
		{"no CA", func(c *config.Consul) { c.TLS.CAFile = "" }, "certificate signed by unknown authority"},
		// verify_incoming: a TLS 1.3 server refuses after the client's
		// handshake, so the client sees its next write fail.
		{"no client certificate", func(c *config.Consul) { c.TLS.CertFile, c.TLS.KeyFile = "", "" }, ""},
		{"server name not in the certificate", func(c *config.Consul) { c.TLS.ServerName = "other.example" }, "other.example"},
	} {
		cfg := good
		tc.edit(&cfg)
		c, tr, err := newConsulAPI(cfg, 1)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, _, err = c.Health().Service("web", "", false, nil)
		tr.Transport.CloseIdleConnections()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}

	// Without a token, default-deny Consul hides the service: ferry says why.
	noToken := good
	noToken.TokenFile = ""
	c2, tr2, err := newConsulAPI(noToken, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Transport.CloseIdleConnections()
	err = checkConsulAccess(context.Background(), c2, []string{"web"}, false, logger)
	if !errors.Is(err, errACLFiltered) || !strings.Contains(err.Error(), "no ACL token is configured") {
		t.Errorf("no token: got %v, want the ACL filtering named", err)
	}
	// A token Consul does not know is refused outright.
	bogus := good
	bogus.TokenFile, bogus.Token = "", "00000000-0000-0000-0000-000000000bad"
	c3, tr3, err := newConsulAPI(bogus, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer tr3.Transport.CloseIdleConnections()
	if err := checkConsulAccess(context.Background(), c3, []string{"web"}, true, logger); err == nil || !strings.Contains(err.Error(), "refused the ACL token") {
		t.Errorf("unknown token: got %v, want a refusal naming the token", err)
	}
}

func TestConsulTokenSources(t *testing.T) {
	noConsulEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	envFile := filepath.Join(dir, "env-token")
	os.WriteFile(file, []byte(" from-file \n"), 0o600)
	os.WriteFile(envFile, []byte("from-env-file"), 0o600)

	for _, tc := range []struct {
		name      string
		c         config.Consul
		env       map[string]string
		want, err string
	}{
		{"token", config.Consul{Token: "from-block"}, map[string]string{api.HTTPTokenFileEnvName: envFile}, "from-block", ""},
		{"token_file", config.Consul{TokenFile: file}, map[string]string{api.HTTPTokenEnvName: "from-env"}, "from-file", ""},
		{"env file over env token", config.Consul{}, map[string]string{api.HTTPTokenEnvName: "from-env", api.HTTPTokenFileEnvName: envFile}, "from-env-file", ""},
		{"env token", config.Consul{}, map[string]string{api.HTTPTokenEnvName: "from-env"}, "from-env", ""},
		{"missing token_file", config.Consul{TokenFile: filepath.Join(dir, "gone")}, nil, "", "cannot read the ACL token file"},
		{"missing env file", config.Consul{}, map[string]string{api.HTTPTokenFileEnvName: filepath.Join(dir, "gone")}, "", "CONSUL_HTTP_TOKEN_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cc := api.DefaultConfig()
			err := consulSecurity(tc.c, cc)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tokenOf(t, cc); got != tc.want {
				t.Errorf("token: got %q, want %q", got, tc.want)
			}
		})
	}
}

// tokenOf returns the token c sends with its requests, as a server sees it.
func tokenOf(t *testing.T, c *api.Config) string {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case got <- r.Header.Get("X-Consul-Token"):
		default:
		}
		w.Write([]byte(`"127.0.0.1:8300"`))
	}))
	defer srv.Close()
	c.Address = srv.Listener.Addr().String()
	client, err := api.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Status().Leader(); err != nil {
		t.Fatal(err)
	}
	return <-got
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// TestTLSConsulLocalServiceWithACLToken runs a ferry sidecar against a
// Consul agent reached over HTTPS (client certificates verified) with ACLs
// in default-deny mode. With a token that may register its application
// (service:write on it) the application is registered, passes its check,
// is routed to by another ferry holding a read-only token, and is
// deregistered on SIGTERM. With a read-only token the registration is
// refused, and the log says so and why.
func TestTLSConsulLocalServiceWithACLToken(t *testing.T) {
	for _, v := range []string{"CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_ADDR", "CONSUL_CACERT"} {
		t.Setenv(v, "")
	}
	ca := testcerts.NewCA(t, "consul")
	server := ca.Leaf("consul-server", "server.dc1.consul", "127.0.0.1")
	client := ca.Leaf("ferry", "ferry")
	const management = "0e3f7c1d-2b4a-4c5d-9e8f-000000000002"
	agent := consultest.StartWith(t, consultest.Options{
		TLS:      &consultest.TLS{CAFile: ca.File, CertFile: server.CertFile, KeyFile: server.KeyFile, VerifyIncoming: true},
		ACLToken: management,
	})
	mgmt := agent.Client()
	token := func(name, rules string) string {
		t.Helper()
		pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), name+".token")
		writeFile(t, file, tok.SecretID+"\n")
		return file
	}
	read := "service_prefix \"\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }"
	readOnly := token("ferry-read", read)
	// The sidecar's token: read everything, register "user" only.
	sidecar := token("ferry-sidecar-user", read+"\nservice \"user\" { policy = \"write\" }")

	userApp := startApp(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "user-app") })
	consulBlock := func(tokenFile string) string {
		return `
consul {
  address    = "https://%CONSUL%"
  token_file = "` + tokenFile + `"
  tls {
    ca_file   = "` + ca.File + `"
    cert_file = "` + client.CertFile + `"
    key_file  = "` + client.KeyFile + `"
  }
}
`
	}
	sidecarCfg := func(tokenFile, id string) string {
		cfg := sidecarConfig("user", id, userApp, "")
		// sidecarConfig's plain consul block, replaced by the TLS one.
		start := strings.Index(cfg, "consul {")
		end := start + strings.Index(cfg[start:], "}\n") + 2
		return cfg[:start] + consulBlock(tokenFile) + cfg[end:]
	}

	side := startFerry(t, agent.HTTPSAddr, sidecarCfg(sidecar, "user-1"))
	waitFor(t, 15*time.Second, "user-1 registered with the sidecar's token and passing", func() bool {
		return passing(mgmt, "user", "user-1")
	})
	svc, _, err := mgmt.Agent().Service("user-1", nil)
	if err != nil {
		t.Fatalf("the agent does not have user-1: %v", err)
	}
	if svc.Port != userApp.Port || svc.Address != userApp.Host {
		t.Errorf("registered as %s:%d, want %s:%d", svc.Address, svc.Port, userApp.Host, userApp.Port)
	}

	// Another ferry, read-only, routes to the registered application.
	edge := startFerry(t, agent.HTTPSAddr, `
listen = "%LISTEN%"
admin  = "%ADMIN%"
`+consulBlock(readOnly)+userRoute)
	edge.WaitReady()
	waitFor(t, 15*time.Second, "the edge routes to user-1", func() bool {
		code, body := get(t, edge.URL+"/api/user/x")
		return code == 200 && body == "user-app"
	})

	// SIGTERM deregisters, with the same token.
	side.Signal(syscall.SIGTERM)
	if code := side.Wait(20 * time.Second); code != 0 {
		t.Errorf("the sidecar exited with %d", code)
	}
	if s, _, err := mgmt.Agent().Service("user-1", nil); err == nil && s != nil {
		t.Errorf("user-1 is still registered after SIGTERM")
	}
	if strings.Contains(side.Logs(), "cannot deregister") {
		t.Errorf("deregistration failed:\n%s", side.Logs())
	}

	// A token that may only read: Consul refuses the registration and the
	// log says why, naming the permission.
	denied := startFerry(t, agent.HTTPSAddr, sidecarCfg(readOnly, "user-2"))
	waitFor(t, 15*time.Second, "the refused registration in the log", func() bool {
		return strings.Contains(denied.Logs(), "cannot register the local service")
	})
	logs := denied.Logs()
	if !strings.Contains(logs, "Permission denied") && !strings.Contains(logs, "permission denied") {
		t.Errorf("the log does not say the token lacks the permission:\n%s", logs)
	}
	if !strings.Contains(logs, "service:write") {
		t.Errorf("the log does not name the permission the token needs (service:write):\n%s", logs)
	}
	if s, _, err := mgmt.Agent().Service("user-2", nil); err == nil && s != nil {
		t.Errorf("user-2 was registered with a read-only token")
	}
}

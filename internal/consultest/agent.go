// Package consultest starts a real Consul agent (consul agent -dev) on loopback
// with its own ports, for tests that need Consul. It never mocks Consul.
package consultest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Binary finds the consul binary: $CONSUL_BIN, then consul on PATH, then the
// repository's bin/consul (built by `make consul`). It returns an error that
// says how to get one when none is found.
func Binary() (string, error) {
	if p := os.Getenv("CONSUL_BIN"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "consul")
	if _, err := os.Stat(p); err == nil {
		return filepath.Clean(p), nil
	}
	return "", fmt.Errorf("consul binary not found: run `make consul` (builds bin/consul) or put consul on PATH")
}

// Agent is a running Consul dev agent. Its methods are safe for concurrent use.
type Agent struct {
	// HTTPAddr is the agent's HTTP API address (host:port).
	HTTPAddr string
	// HTTPSAddr is its HTTPS API address when Options.TLS is set, else "".
	HTTPSAddr string

	bin   string
	ports ports
	tb    testing.TB
	opts  Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *bytes.Buffer
}

type ports struct{ http, serfLAN, serfWAN, server, https int }

// Options are the settings of a dev agent that differ between agents of one
// test: its datacenter (default "dc1") and node name (default the host's).
// Two agents in two datacenters need distinct node names.
type Options struct {
	Datacenter string
	Node       string
	// TLS, when set, also serves the HTTP API over HTTPS on its own port
	// (Agent.HTTPSAddr) with these files.
	TLS *TLS
	// ACLToken, when set, enables ACLs in default-deny mode with this
	// token as the initial management token (also the agent's own token,
	// so that the node registers); Client uses it.
	ACLToken string
}

// TLS is the agent's TLS: its CA, its certificate (which must name
// 127.0.0.1) and key, all PEM files, and whether clients must present a
// certificate signed by the CA.
type TLS struct {
	CAFile, CertFile, KeyFile string
	VerifyIncoming            bool
}

// Start starts a dev agent and waits until it has a leader and has synced its
// node. The agent is stopped when the test ends.
func Start(tb testing.TB) *Agent {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options.
func StartWith(tb testing.TB, opts Options) *Agent {
	tb.Helper()
	bin, err := Binary()
	if err != nil {
		tb.Fatal(err)
	}
	a := &Agent{bin: bin, tb: tb, opts: opts}
	// A port found free may be taken by another process before the agent
	// binds it (tests of other packages run at the same time): then start
	// over on other ports, a few times.
	for attempt := 1; ; attempt++ {
		free := FreePorts(tb, 5)
		a.ports = ports{http: free[0], serfLAN: free[1], serfWAN: free[2], server: free[3], https: free[4]}
		a.HTTPAddr = "127.0.0.1:" + strconv.Itoa(a.ports.http)
		if opts.TLS != nil {
			a.HTTPSAddr = "127.0.0.1:" + strconv.Itoa(a.ports.https)
		}
		err := a.start()
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(a.Logs(), "address already in use") {
			tb.Logf("consultest: a port was taken meanwhile; starting on other ports: %v", err)
			continue
		}
		tb.Fatalf("consultest: consul did not become ready: %v\n%s", err, a.Logs())
	}
	tb.Cleanup(a.Stop)
	return a
}

// Restart starts the agent again after Stop, on the same ports. A dev agent
// keeps nothing across restarts: services must be registered again.
func (a *Agent) Restart() {
	a.tb.Helper()
	if err := a.start(); err != nil {
		a.tb.Fatalf("consultest: consul did not become ready: %v\n%s", err, a.Logs())
	}
}

// start runs the agent on a.ports and waits until it is ready; on failure
// the agent is stopped and the error returned.
func (a *Agent) start() error {
	a.tb.Helper()
	a.mu.Lock()
	if a.cmd != nil {
		a.mu.Unlock()
		return fmt.Errorf("agent already running")
	}
	args := []string{"agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(a.ports.http),
		"-serf-lan-port", strconv.Itoa(a.ports.serfLAN),
		"-serf-wan-port", strconv.Itoa(a.ports.serfWAN),
		"-server-port", strconv.Itoa(a.ports.server),
		"-dns-port", "-1", "-grpc-port", "-1",
		"-log-level", "warn",
	}
	if a.opts.Datacenter != "" {
		args = append(args, "-datacenter", a.opts.Datacenter)
	}
	if a.opts.Node != "" {
		args = append(args, "-node", a.opts.Node)
	}
	if hcl := a.extraHCL(); hcl != "" {
		args = append(args, "-hcl", hcl)
	}
	cmd := exec.Command(a.bin, args...)
	a.logs = &bytes.Buffer{}
	cmd.Stdout = &lockedWriter{w: a.logs, mu: &a.mu}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		return fmt.Errorf("start consul: %w", err)
	}
	a.cmd = cmd
	a.done = make(chan struct{})
	done := a.done
	go func() { _ = cmd.Wait(); close(done) }()
	a.mu.Unlock()

	if err := a.waitReady(30*time.Second, done); err != nil {
		a.Stop()
		return err
	}
	return nil
}

// extraHCL is the agent configuration for Options.TLS and ACLToken
// (Consul 1.13's tls { defaults } and acl { tokens } syntax).
func (a *Agent) extraHCL() string {
	var b strings.Builder
	if t := a.opts.TLS; t != nil {
		fmt.Fprintf(&b, "ports { https = %d }\n", a.ports.https)
		fmt.Fprintf(&b, "tls { defaults { ca_file = %q cert_file = %q key_file = %q verify_incoming = %t } }\n",
			t.CAFile, t.CertFile, t.KeyFile, t.VerifyIncoming)
	}
	if a.opts.ACLToken != "" {
		fmt.Fprintf(&b, "acl { enabled = true default_policy = \"deny\" tokens { initial_management = %q agent = %q } }\n",
			a.opts.ACLToken, a.opts.ACLToken)
	}
	return b.String()
}

// Stop kills the agent and waits for it to exit. Stopping a stopped agent is a no-op.
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// SerfWANAddr is the address other servers join over the WAN.
func (a *Agent) SerfWANAddr() string { return "127.0.0.1:" + strconv.Itoa(a.ports.serfWAN) }

// Logs returns what the agent has printed so far.
func (a *Agent) Logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logs.String()
}

// Client returns an API client for the agent.
func (a *Agent) Client() *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = a.HTTPAddr
	cfg.Token = a.opts.ACLToken
	c, err := api.NewClient(cfg)
	if err != nil {
		a.tb.Fatalf("consultest: client: %v", err)
	}
	return c
}

func (a *Agent) waitReady(timeout time.Duration, exited <-chan struct{}) error {
	c := a.Client()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		leader, err := c.Status().Leader()
		if err == nil && leader != "" {
			nodes, _, err := c.Catalog().Nodes((&api.QueryOptions{}).WithContext(ctx))
			if err == nil && len(nodes) > 0 {
				return nil
			}
			last = err
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
		case <-exited:
			return fmt.Errorf("consul exited: %v", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out after %v: %v", timeout, last)
}

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a moment ago.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var out []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("consultest: free port: %v", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

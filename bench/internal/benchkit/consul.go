package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// ConsulBinary returns a consul on PATH, else bin/consul under root.
func ConsulBinary(root string) (string, error) {
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	p := root + "/bin/consul"
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no consul on PATH and no %s (run make consul): %w", p, err)
	}
	return p, nil
}

// Consul is a dev agent bound to loopback on its own free ports.
type Consul struct {
	*Proc
	HTTPAddr string
}

// StartConsul starts `consul agent -dev` (with extra arguments, if any) and
// waits until it has a leader.
func StartConsul(ctx context.Context, dir, bin string, extra ...string) (*Consul, error) {
	ports, err := FreePorts(4)
	if err != nil {
		return nil, err
	}
	args := append([]string{"agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]),
		"-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]),
		"-server-port", strconv.Itoa(ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-log-level", "warn"}, extra...)
	p, err := Start(dir, "consul", bin, nil, args...)
	if err != nil {
		return nil, err
	}
	c := &Consul{Proc: p, HTTPAddr: "127.0.0.1:" + strconv.Itoa(ports[0])}
	if err := WaitHTTP(ctx, "http://"+c.HTTPAddr+"/v1/status/leader", 200, 30*time.Second, p); err != nil {
		p.Stop()
		return nil, err
	}
	// A leader address, not "", means the dev server elected itself.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := httpGet("http://" + c.HTTPAddr + "/v1/status/leader"); err == nil && len(out) > 4 {
			return c, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop()
	return nil, fmt.Errorf("consul: no leader after 30s")
}

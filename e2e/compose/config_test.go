package compose

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOfflineOverride checks, with Compose's own parser (no engine needed),
// that docker-compose.offline.yml replaces exactly what it says: Consul's
// image, and Prometheus and Grafana moved out of the default start.
func TestOfflineOverride(t *testing.T) {
	cmd, err := composeCommand()
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(cmd[0], append(cmd[1:], "-f", "docker-compose.yml", "-f", "docker-compose.offline.yml", "config")...)
	c.Dir = "../.."
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("compose config: %v\n%s", err, out)
	}
	profiled := profiledServices(string(out))
	for _, svc := range []string{"consul", "edge", "user-1", "user-1-sidecar", "user-2", "user-2-sidecar", "order", "order-sidecar"} {
		if p, ok := profiled[svc]; !ok || p {
			t.Errorf("offline: %s is not started by default (services and whether profiled: %v)", svc, profiled)
		}
	}
	for _, svc := range []string{"prometheus", "grafana", "user-3", "user-3-sidecar"} {
		if !profiled[svc] {
			t.Errorf("offline: %s is started by default, want it behind a profile", svc)
		}
	}
	if !strings.Contains(string(out), "image: ferry-consul:dev") || strings.Contains(string(out), "hashicorp/consul") {
		t.Errorf("offline: Consul's image is not replaced by ferry-consul:dev:\n%s", out)
	}
	c = exec.Command(cmd[0], append(cmd[1:], "-f", "docker-compose.yml", "config")...)
	c.Dir = "../.."
	if out, err = c.CombinedOutput(); err != nil || !strings.Contains(string(out), "image: hashicorp/consul:1.13.9") {
		t.Errorf("the users' compose file does not run the official Consul image: %v\n%s", err, out)
	}
}

// profiledServices reads `compose config` output: each service, and whether
// it has profiles (then `up` leaves it out unless its profile is asked for).
func profiledServices(config string) map[string]bool {
	out := map[string]bool{}
	inServices, current := false, ""
	for _, line := range strings.Split(config, "\n") {
		switch {
		case line == "services:":
			inServices = true
		case !strings.HasPrefix(line, " ") && line != "":
			inServices = false
		case inServices && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && strings.HasSuffix(line, ":"):
			current = strings.TrimSuffix(strings.TrimSpace(line), ":")
			out[current] = false
		case inServices && current != "" && strings.TrimSpace(line) == "profiles:":
			out[current] = true
		}
	}
	return out
}

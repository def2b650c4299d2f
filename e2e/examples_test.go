package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleConfigsAreValid keeps every shipped example loadable.
func TestExampleConfigsAreValid(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/*.hcl")
	files = append(files, "../deploy/docker/ferry.hcl") // the image's default config
	if len(files) < 5 {
		t.Fatalf("found %d example configs, want at least 5", len(files))
	}
	for _, f := range files {
		if strings.Contains(f, "/tls-edge/") {
			continue // names generated certificates: TestTLSEdgeExample
		}
		out, err := exec.Command(ferryBin, "validate", "-config", f).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

// TestComposeFileIsValid checks docker-compose.yml with docker-compose's own
// parser (Debian's package; no Docker engine is needed for `config`).
func TestComposeFileIsValid(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("docker-compose not found: install Debian's docker-compose package (.ci/run does)")
	}
	out, err := exec.Command(bin, "-f", "../docker-compose.yml", "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	for _, svc := range []string{"consul:", "edge:", "user-1-sidecar:", "user-2-sidecar:", "order-sidecar:"} {
		if !strings.Contains(string(out), svc) {
			t.Errorf("compose config has no service %q", svc)
		}
	}
}

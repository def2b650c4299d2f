package compose

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerRun starts ferry:dev the way the README shows for one container:
// `docker run -p … -e CONSUL_HTTP_ADDR=…` with the image's default config
// (all interfaces) and a routes file mounted beside it in /etc/ferry, on the
// project's network, and checks a request reaches the user service and the
// image's HEALTHCHECK reports it healthy.
func dockerRun(t *testing.T, s *stack, f *figure) {
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.hcl")
	if err := os.WriteFile(routes, []byte("route \"users\" {\n  path_prefix = \"/api/user\"\n  service     = \"user\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	port := freePort(t)
	name := s.project + "-dockerrun"
	if _, err := docker(time.Minute, "run", "-d", "--rm", "--name", name,
		"--label", "com.docker.compose.project="+s.project, // removed with the project
		"--network", s.network("default"),
		"-p", fmt.Sprintf("127.0.0.1:%d:8080", port),
		"-e", "CONSUL_HTTP_ADDR=consul:8500",
		"-v", routes+":/etc/ferry/routes.hcl:ro",
		"ferry:dev"); err != nil {
		t.Fatal(err)
	}
	defer docker(time.Minute, "rm", "-f", name)
	var last string
	took, err := waitFor(30*time.Second, 100*time.Millisecond, func() (bool, string) {
		resp, err := adminClient.Get(fmt.Sprintf("http://127.0.0.1:%d/api/user/1", port))
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		last = string(body)
		return resp.StatusCode == http.StatusOK && strings.Contains(last, "answered"), fmt.Sprintf("%d %q", resp.StatusCode, body)
	})
	if err != nil {
		logs, _ := docker(30*time.Second, "logs", name)
		t.Fatalf("docker run ferry:dev: %v\n%s", err, logs)
	}
	// The image's own HEALTHCHECK (the static probe, no shell) passes with
	// the default configuration: Docker reports the container healthy.
	healthy, err := waitFor(30*time.Second, 250*time.Millisecond, func() (bool, string) {
		h, _ := docker(30*time.Second, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", name)
		return h == "healthy", "docker health: " + h
	})
	if err != nil {
		t.Fatalf("docker run ferry:dev: %v", err)
	}
	f.convergence = append(f.convergence, fmt.Sprintf("docker run -p -e CONSUL_HTTP_ADDR with a mounted routes file: routing %s after start (%s), healthy by the image's HEALTHCHECK %s after start",
		took.Round(100*time.Millisecond), strings.TrimSpace(strings.SplitN(last, "(", 2)[0]), (took+healthy).Round(100*time.Millisecond)))
}

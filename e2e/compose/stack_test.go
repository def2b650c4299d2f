package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stack is one docker-compose project of the reference topology, started
// from the repository's docker-compose.yml and docker-compose.offline.yml
// under a project name of its own, with its host ports on free loopback ports.
// Everything it creates carries the project's label and is removed by down.
type stack struct {
	t       *testing.T
	project string
	root    string
	compose []string // "docker-compose" or "docker compose"
	env     []string
	edge    int               // host port of the edge's data plane
	admin   int               // host port of the edge's admin API
	consul  int               // host port of Consul's HTTP API
	ids     map[string]string // service → container ID, filled by containerID
}

// composeCommand returns how Compose is invoked here: the v2 plugin if the
// docker CLI has it, else the standalone docker-compose (v1, Debian's).
func composeCommand() ([]string, error) {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, nil
	}
	return nil, fmt.Errorf("neither `docker compose` nor docker-compose is installed")
}

func newStack(t *testing.T) *stack {
	t.Helper()
	cmd, err := composeCommand()
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{
		t: t, root: root, compose: cmd, ids: map[string]string{},
		project: fmt.Sprintf("ferrycompose%d", os.Getpid()),
		edge:    freePort(t), admin: freePort(t), consul: freePort(t),
	}
	s.env = append(os.Environ(),
		"FERRY_EDGE_PORT="+strconv.Itoa(s.edge),
		"FERRY_ADMIN_PORT="+strconv.Itoa(s.admin),
		"CONSUL_PORT="+strconv.Itoa(s.consul),
	)
	return s
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// run runs one Compose command on the project, bounded by timeout.
func (s *stack) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append([]string{}, s.compose[1:]...),
		"-p", s.project, "-f", "docker-compose.yml", "-f", "docker-compose.offline.yml")
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, s.compose[0], full...)
	cmd.Dir = s.root
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", s.compose[0], strings.Join(full, " "), err, out)
	}
	return string(out), nil
}

// must runs a Compose command and fails the test if it fails.
func (s *stack) must(timeout time.Duration, args ...string) {
	s.t.Helper()
	if _, err := s.run(timeout, args...); err != nil {
		s.t.Fatal(err)
	}
}

// docker runs a docker CLI command, bounded by timeout.
func docker(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// down removes every container, network and volume of the project: through
// Compose, then by the project's label for anything Compose left behind.
// Nothing else on the engine is touched.
func (s *stack) down() {
	if _, err := s.run(2*time.Minute, "--profile", "scale", "down", "-v", "--remove-orphans", "-t", "10"); err != nil {
		s.t.Logf("compose down: %v", err)
	}
	label := "label=com.docker.compose.project=" + s.project
	if ids, _ := docker(30*time.Second, "ps", "-aq", "--filter", label); ids != "" {
		docker(time.Minute, append([]string{"rm", "-fv"}, strings.Fields(ids)...)...)
	}
	if ids, _ := docker(30*time.Second, "network", "ls", "-q", "--filter", label); ids != "" {
		docker(time.Minute, append([]string{"network", "rm"}, strings.Fields(ids)...)...)
	}
	if ids, _ := docker(30*time.Second, "volume", "ls", "-q", "--filter", label); ids != "" {
		docker(time.Minute, append([]string{"volume", "rm", "-f"}, strings.Fields(ids)...)...)
	}
}

// containerID returns the ID of a service's (only) container; IDs survive
// stop and start, so they are looked up once.
func (s *stack) containerID(service string) string {
	s.t.Helper()
	if id, ok := s.ids[service]; ok {
		return id
	}
	id, err := docker(30*time.Second, "ps", "-aq",
		"--filter", "label=com.docker.compose.project="+s.project,
		"--filter", "label=com.docker.compose.service="+service)
	if err != nil || id == "" || strings.Contains(id, "\n") {
		s.t.Fatalf("container of %s: %q %v", service, id, err)
	}
	s.ids[service] = id
	return id
}

// network returns the full name of one of the project's networks (Compose
// v1 and v2 both join project and name with "_").
func (s *stack) network(name string) string { return s.project + "_" + name }

// containerIP returns a container's address on one of the project's networks
// (the host reaches bridge networks directly).
func (s *stack) containerIP(service, network string) string {
	s.t.Helper()
	out, err := docker(30*time.Second, "inspect", "-f", "{{json .NetworkSettings.Networks}}", s.containerID(service))
	if err != nil {
		s.t.Fatal(err)
	}
	var nets map[string]struct{ IPAddress string }
	if err := json.Unmarshal([]byte(out), &nets); err != nil {
		s.t.Fatalf("inspect %s: %v", service, err)
	}
	ip := nets[s.network(network)].IPAddress
	if ip == "" {
		s.t.Fatalf("%s has no address on %s: %s", service, network, out)
	}
	return ip
}

// health returns a container's Docker health status ("" without a check).
func (s *stack) health(service string) string {
	out, _ := docker(30*time.Second, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", s.containerID(service))
	return out
}

// ferryLog returns the lines of a ferry container's log that contain want,
// with the time ferry wrote in each.
func ferryLog(id string, want ...string) (map[string]time.Time, error) {
	out, err := exec.Command("docker", "logs", id).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("docker logs: %w", err)
	}
	found := map[string]time.Time{}
	for _, line := range bytes.Split(out, []byte("\n")) {
		f := strings.SplitN(string(line), " ", 2)
		if len(f) != 2 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil {
			continue
		}
		for _, w := range want {
			if strings.Contains(f[1], w) {
				found[w] = at // the last occurrence
			}
		}
	}
	return found, nil
}

// logLine returns the last line of a container's log that contains want.
func logLine(id, want string) (string, error) {
	out, err := exec.Command("docker", "logs", id).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker logs: %w", err)
	}
	var found string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, want) {
			found = line
		}
	}
	if found == "" {
		return "", fmt.Errorf("no %q in the log of %s", want, id)
	}
	return found, nil
}

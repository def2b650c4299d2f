package compose

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// agentCallTimeout is discovery.AgentCallTimeout: the bound on each call the
// local-service registration makes to the agent (the test drives the image,
// so it states the figure it expects).
const agentCallTimeout = 5 * time.Second

// stopUnreachable stops user-2's sidecar with `docker stop` while Consul is
// out of its reach, and checks what it does from its exit code and its log:
// a deregister attempt that fails within agentCallTimeout, deregister_delay,
// the drain, and exit 0, in that order and well within stop_grace_period
// (30 s) — not a SIGKILL at its end. It returns when the attempt failed and
// why, and when the sidecar exited, both counted from `docker stop`.
func stopUnreachable(t *testing.T, s *stack) (failed time.Duration, cause string, exited time.Duration) {
	t.Helper()
	id := s.containerID("user-2-sidecar")
	start := time.Now()
	if _, err := docker(time.Minute, "stop", "-t", "30", id); err != nil { // stop_grace_period: 30s
		t.Fatal(err)
	}
	exited = time.Since(start)
	if code, _ := docker(30*time.Second, "inspect", "-f", "{{.State.ExitCode}}", id); code != "0" {
		t.Errorf("without Consul, the sidecar exited with %s, want 0 (a graceful exit within stop_grace_period)", code)
	}
	// The deregister attempt, deregister_delay, a drain with nothing in
	// flight, and a margin for a loaded machine.
	if limit := agentCallTimeout + deregisterDelay + 5*time.Second; exited > limit {
		t.Errorf("without Consul, the sidecar took %s to exit, want within %s (stop_grace_period: 30s)", exited, limit)
	}
	logged := stopSteps(t, id, start, "cannot deregister the local service", "waiting for other proxies", "shutting down", "stopped")
	failedAt := logged["cannot deregister the local service"]
	if d := logged["shutting down"].Sub(failedAt); d < deregisterDelay-50*time.Millisecond {
		t.Errorf("the drain began %s after the failed deregistration, want deregister_delay %s", d, deregisterDelay)
	}
	if d := failedAt.Sub(start); d > agentCallTimeout+time.Second {
		t.Errorf("the deregister attempt gave up %s after docker stop, want within %s", d, agentCallTimeout)
	}
	line, err := logLine(id, "cannot deregister the local service")
	if err != nil {
		t.Fatal(err)
	}
	return failedAt.Sub(start), deregisterCause(line), exited
}

// deregisterCause shortens the logged error of a failed deregistration to
// its cause: "no answer from the agent within 5s", or the error's tail.
func deregisterCause(line string) string {
	if strings.Contains(line, "no answer from the agent within") {
		return "no answer from the agent within 5s"
	}
	if i := strings.LastIndex(line, ": "); i >= 0 {
		return strings.Trim(line[i+2:], `"\`)
	}
	return line
}

// stopCutOffSidecar cuts user-2 (and so its sidecar, which shares its
// network namespace) off the discovery network and stops the sidecar. Its
// deregistration cannot reach Consul (here the name consul-agent no longer
// resolves: it exists on that network only). user-2 itself keeps running
// and passing Consul's check (run over `default`), so it stays registered
// and keeps serving: no request fails. Reconnected and started again, the
// sidecar takes over its registration.
func stopCutOffSidecar(t *testing.T, s *stack, consul *api.Client, l *load, converged convergedFunc, f *figure) {
	net, app := s.network("discovery"), s.containerID("user-2")
	if _, err := docker(time.Minute, "network", "disconnect", net, app); err != nil {
		t.Fatal(err)
	}
	reconnected := false
	defer func() {
		if !reconnected {
			docker(time.Minute, "network", "connect", net, app)
		}
	}()
	failed, cause, exited := stopUnreachable(t, s)
	if ids, err := passing(consul, "user"); err != nil || !slices.Contains(ids, "user-2") {
		t.Errorf("Consul passing user: %v %v, want user-2 still there (its deregistration was cut off)", ids, err)
	}
	exitedAt := time.Now()
	if _, err := waitFor(10*time.Second, 20*time.Millisecond, func() (bool, string) {
		_, last := l.seen("user-2")
		return last.After(exitedAt), "user-2 got no request since its sidecar exited"
	}); err != nil {
		t.Error(err)
	}
	if _, err := docker(time.Minute, "network", "connect", net, app); err != nil {
		t.Fatal(err)
	}
	reconnected = true
	s.must(time.Minute, "start", "user-2-sidecar")
	back, err := waitFor(time.Minute, 50*time.Millisecond, converged("user-1", "user-2"))
	if err != nil {
		t.Fatal(err)
	}
	f.convergence = append(f.convergence, fmt.Sprintf(
		"deregister attempt failed %s after docker stop (%s), exit 0 %s after docker stop (grace: 30s); user-2 stayed passing in Consul and kept answering; reconnected and started again: converged %s later",
		failed.Round(100*time.Millisecond), cause, exited.Round(100*time.Millisecond), back.Round(100*time.Millisecond)))
}

// stopSidecarConsulHung freezes Consul (`docker pause`: connections are
// accepted by the kernel and never answered, as on a silent partition or a
// hung agent) and stops user-2's sidecar: its deregister attempt must give up
// at agentCallTimeout, not hang until TCP does or the grace period ends.
// Consul is resumed after the sidecar exited; whether it then applies the
// deregistration it had queued is reported (that is why deregister_delay is
// waited after a failed attempt too). The sidecar is started again.
func stopSidecarConsulHung(t *testing.T, s *stack, consul *api.Client, converged convergedFunc, f *figure) {
	id := s.containerID("consul")
	if _, err := docker(time.Minute, "pause", id); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			docker(time.Minute, "unpause", id)
		}
	}()
	failed, cause, exited := stopUnreachable(t, s)
	if failed < agentCallTimeout-100*time.Millisecond || cause != "no answer from the agent within 5s" {
		t.Errorf("Consul frozen, the deregister attempt failed %s after docker stop (%s), want at its deadline %s with no answer", failed, cause, agentCallTimeout)
	}
	if _, err := docker(time.Minute, "unpause", id); err != nil {
		t.Fatal(err)
	}
	resumed = true
	applied := "still registered 5s after Consul resumed"
	if took, err := waitFor(5*time.Second, 50*time.Millisecond, func() (bool, string) {
		ids, err := passing(consul, "user")
		return err == nil && !slices.Contains(ids, "user-2"), fmt.Sprintf("Consul passing user: %v %v", ids, err)
	}); err == nil {
		applied = fmt.Sprintf("Consul applied the queued deregistration %s after resuming", took.Round(10*time.Millisecond))
	}
	s.must(time.Minute, "start", "user-2-sidecar")
	back, err := waitFor(time.Minute, 50*time.Millisecond, converged("user-1", "user-2"))
	if err != nil {
		t.Fatal(err)
	}
	f.convergence = append(f.convergence, fmt.Sprintf(
		"deregister attempt gave up %s after docker stop (%s), exit 0 %s after docker stop (grace: 30s); %s; started again: converged %s later",
		failed.Round(100*time.Millisecond), cause, exited.Round(100*time.Millisecond), applied, back.Round(100*time.Millisecond)))
}

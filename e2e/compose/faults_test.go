package compose

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// convergedFunc builds the condition "Consul passes exactly these user
// instances (and order), and both ferries route to exactly them, not stale".
type convergedFunc func(users ...string) func() (bool, string)

// rollingRestart restarts every user replica in turn the documented way:
// stop the sidecar (deregister, deregister_delay, drain, exit), stop the app,
// start the app, start the sidecar, and wait until it is routed to again.
func rollingRestart(t *testing.T, s *stack, consul *api.Client, converged convergedFunc, f *figure) {
	for _, r := range []string{"user-1", "user-2"} {
		start := time.Now()
		s.must(time.Minute, "stop", r+"-sidecar")
		stopped := time.Since(start)
		s.must(time.Minute, "stop", r)
		s.must(time.Minute, "start", r)
		s.must(time.Minute, "start", r+"-sidecar")
		restarted := time.Now()
		back, err := waitFor(time.Minute, 50*time.Millisecond, func() (bool, string) {
			ids, err := passing(consul, "user")
			return err == nil && slices.Contains(ids, r), fmt.Sprintf("Consul passing user: %v %v", ids, err)
		})
		if err != nil {
			t.Fatal(err)
		}
		routed, err := waitFor(30*time.Second, 50*time.Millisecond, converged("user-1", "user-2"))
		if err != nil {
			t.Fatal(err)
		}
		f.convergence = append(f.convergence, fmt.Sprintf("%s: sidecar stopped in %s, replaced in %s, passing %s after start, routed by both ferries %s later",
			r, stopped.Round(100*time.Millisecond), restarted.Sub(start).Round(100*time.Millisecond),
			back.Round(100*time.Millisecond), routed.Round(10*time.Millisecond)))
	}
}

// stopSidecar stops user-2's sidecar with `docker stop` and checks its
// sequence from Consul, from the loops and from its log: deregistered, then
// deregister_delay, then the drain, then exit 0 within stop_grace_period;
// user-2 gets no request after the others learnt of the deregistration.
func stopSidecar(t *testing.T, s *stack, consul *api.Client, l *load, converged convergedFunc, f *figure) {
	id := s.containerID("user-2-sidecar")
	start := time.Now()
	stopped := make(chan error, 1)
	go func() {
		_, err := docker(time.Minute, "stop", "-t", "30", id) // stop_grace_period: 30s
		stopped <- err
	}()
	gone, err := waitFor(30*time.Second, 20*time.Millisecond, func() (bool, string) {
		ids, err := passing(consul, "user")
		return err == nil && !slices.Contains(ids, "user-2"), fmt.Sprintf("Consul passing user: %v %v", ids, err)
	})
	if err != nil {
		t.Fatal(err)
	}
	deregistered := start.Add(gone)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	exited := time.Since(start)
	code, _ := docker(30*time.Second, "inspect", "-f", "{{.State.ExitCode}}", id)
	if code != "0" {
		t.Errorf("the sidecar exited with %s, want 0 (a graceful exit within stop_grace_period)", code)
	}
	if exited > 30*time.Second {
		t.Errorf("the sidecar took %s to exit, longer than its stop_grace_period 30s", exited)
	}
	logged := stopSteps(t, id, start, "deregistered the local service", "waiting for other proxies", "shutting down", "stopped")
	if d := logged["shutting down"].Sub(logged["deregistered the local service"]); d < deregisterDelay-50*time.Millisecond {
		t.Errorf("the drain began %s after the deregistration, want deregister_delay %s", d, deregisterDelay)
	}
	_, last := l.seen("user-2")
	if last.After(logged["shutting down"]) {
		t.Errorf("user-2 answered at %s, after its sidecar began draining at %s", last.Format("15:04:05.000"), logged["shutting down"].Format("15:04:05.000"))
	}
	f.convergence = append(f.convergence, fmt.Sprintf(
		"deregistered (Consul) %s after docker stop, last request to user-2 at %s from then (±20 ms poll), drain began %s after the deregistration, exit 0 %s after docker stop",
		gone.Round(10*time.Millisecond), last.Sub(deregistered).Round(10*time.Millisecond),
		logged["shutting down"].Sub(deregistered).Round(10*time.Millisecond), exited.Round(100*time.Millisecond)))

	s.must(time.Minute, "start", "user-2-sidecar")
	back, err := waitFor(time.Minute, 50*time.Millisecond, converged("user-1", "user-2"))
	if err != nil {
		t.Fatal(err)
	}
	f.convergence = append(f.convergence, fmt.Sprintf("started again: routed by both ferries %s later", back.Round(100*time.Millisecond)))
}

// scaleUpDown adds a third user replica (the `scale` profile), measures how
// soon after Consul passes it the loops reach it, then removes it the
// documented way (sidecar first: it drains) and checks it got nothing after.
func scaleUpDown(t *testing.T, s *stack, consul *api.Client, l *load, converged convergedFunc, f *figure) {
	start := time.Now()
	upDone := make(chan error, 1)
	go func() {
		_, err := s.run(3*time.Minute, "--profile", "scale", "up", "-d", "--no-build", "--no-deps", "user-3", "user-3-sidecar")
		upDone <- err
	}()
	// Consul is watched while Compose starts the replica, so that passed is
	// when user-3 began passing (to within the 20 ms poll).
	var passed time.Time
	if _, err := waitFor(3*time.Minute, 20*time.Millisecond, func() (bool, string) {
		ids, err := passing(consul, "user")
		passed = time.Now()
		return err == nil && slices.Contains(ids, "user-3"), fmt.Sprintf("Consul passing user: %v %v", ids, err)
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-upDone; err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	if _, err := waitFor(10*time.Second, 20*time.Millisecond, func() (bool, string) {
		first, _ := l.seen("user-3")
		return !first.IsZero(), "no answer from user-3"
	}); err != nil {
		t.Fatal(err)
	}
	first, _ := l.seen("user-3")
	// passed is when the poll saw it (at most 20 ms late): first is measured from there.
	if d := first.Sub(passed); d > time.Second {
		t.Errorf("user-3 got its first request %s after passing in Consul, want within 1s", d)
	}
	if _, err := waitFor(30*time.Second, 50*time.Millisecond, converged("user-1", "user-2", "user-3")); err != nil {
		t.Fatal(err)
	}
	f.convergence = append(f.convergence, fmt.Sprintf("up: passing in Consul %s after `up` began (which returned after %s), first request to user-3 %s after passing",
		passed.Sub(start).Round(100*time.Millisecond), up.Round(100*time.Millisecond), first.Sub(passed).Round(time.Millisecond)))

	down := time.Now()
	s.must(time.Minute, "--profile", "scale", "stop", "user-3-sidecar")
	sidecarStopped := time.Now()
	_, last := l.seen("user-3")
	s.must(time.Minute, "--profile", "scale", "stop", "user-3")
	s.must(time.Minute, "--profile", "scale", "rm", "-f", "user-3", "user-3-sidecar")
	if _, err := waitFor(30*time.Second, 50*time.Millisecond, converged("user-1", "user-2")); err != nil {
		t.Fatal(err)
	}
	if _, after := l.seen("user-3"); after.After(sidecarStopped) {
		t.Errorf("user-3 answered at %s, after its sidecar had drained and exited at %s", after.Format("15:04:05.000"), sidecarStopped.Format("15:04:05.000"))
	}
	f.convergence = append(f.convergence, fmt.Sprintf("down: sidecar drained and exited in %s (last request to user-3 %s before that), replica removed in %s",
		sidecarStopped.Sub(down).Round(100*time.Millisecond), sidecarStopped.Sub(last).Round(10*time.Millisecond), time.Since(down).Round(100*time.Millisecond)))
}

// partitionSidecar cuts order (and so its sidecar, which shares its network
// namespace) off the discovery network. While it is cut off, user-1's
// sidecar is stopped (user-1 leaves Consul; the app keeps running): the edge
// follows, order's sidecar keeps routing to its last known set. Reconnected,
// order's sidecar must converge on [user-2]; then user-1 comes back.
func partitionSidecar(t *testing.T, s *stack, orderAdmin string, converged convergedFunc, f *figure) {
	net, id := s.network("discovery"), s.containerID("order")
	start := time.Now()
	if _, err := docker(time.Minute, "network", "disconnect", net, id); err != nil {
		t.Fatal(err)
	}
	reconnected := false
	defer func() {
		if !reconnected {
			docker(time.Minute, "network", "connect", net, id)
		}
	}()
	s.must(time.Minute, "stop", "user-1-sidecar")
	// ferry's blocking query waits up to wait_time (30s) plus Consul's jitter
	// (wait/16): a query unanswered for longer than that is a failure to report.
	staleAfter, staleErr := waitFor(45*time.Second, 200*time.Millisecond, func() (bool, string) {
		ups, err := upstreams(orderAdmin)
		if err != nil {
			return false, err.Error()
		}
		u := ups["user"]
		return u.Stale, fmt.Sprintf("order's sidecar: user stale %v, routes to %v", u.Stale, u.healthyIDs())
	})
	ups, err := upstreams(orderAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if u := ups["user"]; !slices.Equal(u.healthyIDs(), []string{"user-1", "user-2"}) {
		t.Errorf("cut off, order's sidecar routes user to %v, want the last known [user-1 user-2]", u.healthyIDs())
	}
	cutFor := time.Since(start)
	if _, err := docker(time.Minute, "network", "connect", net, id); err != nil {
		t.Fatal(err)
	}
	reconnected = true
	back, err := waitFor(90*time.Second, 100*time.Millisecond, converged("user-2"))
	if err != nil {
		t.Fatal(err)
	}
	s.must(time.Minute, "start", "user-1-sidecar")
	if _, err := waitFor(time.Minute, 100*time.Millisecond, converged("user-1", "user-2")); err != nil {
		t.Fatal(err)
	}
	staleNote := fmt.Sprintf("stale reported %s after the cut", staleAfter.Round(100*time.Millisecond))
	if staleErr != nil {
		staleNote = "stale NOT reported within 45 s"
	}
	f.convergence = append(f.convergence, fmt.Sprintf("%s, cut off %s while user-1 left Consul, converged on [user-2] %s after reconnecting",
		staleNote, cutFor.Round(time.Second), back.Round(100*time.Millisecond)))
	t.Run("reports stale", func(t *testing.T) {
		// Each query has a deadline (wait time + Consul's jitter + a
		// margin: discovery/deadline.go), so a silent partition is noticed.
		if staleErr != nil {
			t.Errorf("cut off by a silent partition, order's sidecar never reported its set stale: %v", staleErr)
		}
	})
}

// killConsul kills the Consul container, keeps it down for 60 s while both
// ferries serve their last known (stale) sets, starts it again and waits for
// everything to converge.
func killConsul(t *testing.T, s *stack, edgeAdmin, orderAdmin string, converged convergedFunc, f *figure) {
	id := s.containerID("consul")
	start := time.Now()
	if _, err := docker(time.Minute, "kill", id); err != nil {
		t.Fatal(err)
	}
	stale, err := waitFor(90*time.Second, 100*time.Millisecond, func() (bool, string) {
		var why []string
		for _, base := range []string{edgeAdmin, orderAdmin} {
			ups, err := upstreams(base)
			if err != nil {
				return false, err.Error()
			}
			if u := ups["user"]; !u.Stale {
				why = append(why, base+": user not stale yet")
			}
		}
		return len(why) == 0, strings.Join(why, "; ")
	})
	if err != nil {
		t.Fatal(err)
	}
	down := time.NewTimer(max(60*time.Second-time.Since(start), 0))
	<-down.C
	for _, base := range []string{edgeAdmin, orderAdmin} {
		ups, err := upstreams(base)
		if err != nil {
			t.Fatal(err)
		}
		if u := ups["user"]; !u.Stale || !slices.Equal(u.healthyIDs(), []string{"user-1", "user-2"}) {
			t.Errorf("Consul down: %s routes user to %v (stale %v), want the last known [user-1 user-2], stale", base, u.healthyIDs(), u.Stale)
		}
	}
	downFor := time.Since(start)
	if _, err := docker(time.Minute, "start", id); err != nil {
		t.Fatal(err)
	}
	back, err := waitFor(2*time.Minute, 100*time.Millisecond, converged("user-1", "user-2"))
	if err != nil {
		t.Fatal(err)
	}
	f.convergence = append(f.convergence, fmt.Sprintf("both ferries stale %s after the kill, Consul down %s, converged %s after docker start",
		stale.Round(100*time.Millisecond), downFor.Round(time.Second), back.Round(100*time.Millisecond)))
}

// stopSteps reads the sidecar id's log and checks that each of steps was
// logged after start (the docker stop), in this order; it returns when each
// was logged.
func stopSteps(t *testing.T, id string, start time.Time, steps ...string) map[string]time.Time {
	t.Helper()
	logged, err := ferryLog(id, steps...)
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range steps {
		at, ok := logged[step]
		if !ok || at.Before(start.Add(-time.Second)) {
			t.Fatalf("the sidecar's log has no %q line after the stop: %v", step, logged)
		}
		if i > 0 && at.Before(logged[steps[i-1]]) {
			t.Errorf("%q logged at %s, before %q at %s", step, at.Format("15:04:05.000"), steps[i-1], logged[steps[i-1]].Format("15:04:05.000"))
		}
	}
	return logged
}

package e2e

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// agentCallTimeout is discovery.AgentCallTimeout: the bound on each call the
// local-service registration makes to the agent (this package drives the
// binary, so it states the figure it expects).
const agentCallTimeout = 5 * time.Second

// TestSidecarStoppedWhileCutOffFromConsul: a sidecar whose path to Consul
// silently drops packets (a partition; `docker network disconnect` does the
// same to a container) is stopped with SIGTERM. Its deregistration cannot
// arrive, yet it must not hang until TCP gives up: a deregister attempt
// bounded by agentCallTimeout, then deregister_delay, the drain, and exit 0,
// well within docker-compose.yml's stop_grace_period (30 s).
func TestSidecarStoppedWhileCutOffFromConsul(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	p := consultest.NewPartition(t, agent.HTTPAddr)
	a := startApp(t, "127.0.0.31", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "user-1") })
	// It routes the user service too, so that its discovery's blocking
	// query is also in flight through the cut path when it stops.
	f := startFerryOn(t, a.Host, p.Addr, sidecarConfig("user", "user-1", a, userRoute))
	waitFor(t, 10*time.Second, "user-1 passing in Consul", func() bool { return passing(c, "user", "user-1") })
	f.WaitReady()

	p.Cut()
	start := time.Now()
	f.Signal(syscall.SIGTERM)
	code := f.Wait(30 * time.Second)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("the sidecar exited %d, want 0\n%s", code, f.Logs())
	}
	// The bounded deregistration and deregister_delay (500ms), plus the
	// drain (nothing in flight), the race detector's 1 s at exit and a
	// margin for a loaded machine.
	least := agentCallTimeout + 500*time.Millisecond
	if took < least-100*time.Millisecond || took > least+5*time.Second {
		t.Errorf("the sidecar exited %v after SIGTERM, want about %v (deregister attempt bounded by %v, then deregister_delay 500ms, then the drain)", took, least, agentCallTimeout)
	}
	logs := f.Logs()
	at := -1
	for _, step := range []string{
		"cannot deregister the local service",
		`deregister: no answer from the agent within 5s`,
		"waiting for other proxies to stop sending to the local service",
		"shutting down",
		"stopped",
	} {
		i := strings.Index(logs[max(at, 0):], step)
		if i < 0 {
			t.Fatalf("no %q in the sidecar's log after the previous step:\n%s", step, logs)
		}
		at = max(at, 0) + i
	}
	// Nothing reached Consul: the instance stays listed until its check
	// fails (here the app still answers it), as the README says.
	if !passing(c, "user", "user-1") {
		t.Error("Consul no longer lists user-1, yet the deregistration was cut off")
	}
	// A -race binary sleeps 1 s at exit (GORACE atexit_sleep_ms): the
	// log's times show the sequence itself.
	from := strings.LastIndex(logs[:strings.Index(logs, "cannot deregister")], "\n") + 1
	t.Logf("cut off from Consul, the sidecar exited 0 %v after SIGTERM (%s); its log from the deregister attempt on:\n%s",
		took.Round(10*time.Millisecond), start.UTC().Format("15:04:05.000"), strings.TrimSpace(logs[from:]))
}

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// laneConfig is the top of a configuration for a ferry serving through
// lane: "fast" (the fast lane) or "nethttp" (fast_lane = false). It has no
// access log: the suites that use it send hundreds of requests.
func laneConfig(lane string) string {
	return fmt.Sprintf(`
listen = "%%LISTEN%%"
admin  = "%%ADMIN%%"
shutdown_timeout = "1s"
fast_lane = %v
consul {
  address = "%%CONSUL%%"
}
log {
  access_log = "off"
}
`, lane == "fast")
}

// startQuietFerry is startFerry for suites that drive hundreds of cases
// through one ferry: it logs at warn level, and on failure shows only the
// last lines of ferry's log instead of all of it.
func startQuietFerry(t *testing.T, consulAddr, cfg string) *ferry {
	t.Helper()
	ports := consultest.FreePorts(t, 2)
	listen := "127.0.0.1:" + strconv.Itoa(ports[0])
	admin := "127.0.0.1:" + strconv.Itoa(ports[1])
	cfg = strings.NewReplacer("%LISTEN%", listen, "%ADMIN%", admin, "%CONSUL%", consulAddr).Replace(cfg)
	path := filepath.Join(t.TempDir(), "ferry.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &ferry{URL: "http://" + listen, AdminURL: "http://" + admin, Config: path, t: t, done: make(chan struct{})}
	f.cmd = exec.Command(ferryBin, "run", "-config", path, "-log-level", "warn")
	f.cmd.Stdout = &lockedWriter{mu: &f.mu, w: &f.out}
	f.cmd.Stderr = &lockedWriter{mu: &f.mu, w: &f.logs}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() {
		f.Signal(syscall.SIGKILL)
		<-f.done
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(f.Logs()), "\n")
			t.Logf("ferry log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	waitFor(t, 15*time.Second, "ferry /healthz", func() bool { return statusOf(f.AdminURL+"/healthz") == 200 })
	return f
}

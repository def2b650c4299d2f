package e2e

import (
	"fmt"
	"testing"
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
	path, listen, admin := writeConfig(t, "127.0.0.1", consulAddr, cfg)
	return runFerryLogging(t, path, listen, admin, "warn", 40)
}

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

func TestGracefulShutdownFinishesInFlightRequest(t *testing.T) {
	agent := consultest.Start(t)
	entered := make(chan struct{}, 1)
	b := startBackend(t, "slow-1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/user/slow" {
			entered <- struct{}{}
			time.Sleep(time.Second)
		}
		io.WriteString(w, "done")
	})
	register(t, agent.Client(), "user", b)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 1)

	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Get(f.URL + "/api/user/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	f.Signal(syscall.SIGTERM)

	// New connections are refused while the in-flight request finishes.
	waitFor(t, 2*time.Second, "listener closed", func() bool {
		_, err := http.Get(f.URL + "/api/user/x")
		return err != nil
	})
	r := <-res
	if r.err != nil || r.code != 200 || r.body != "done" {
		t.Fatalf("in-flight request: got %d %q %v, want 200 \"done\"", r.code, r.body, r.err)
	}
	if code := f.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func TestStartsWhileConsulIsDown(t *testing.T) {
	agent := consultest.Start(t)
	agent.Stop()
	f := startFerry(t, agent.HTTPAddr, basicConfig)

	if code := statusOf(f.AdminURL + "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Consul down: got %d, want 503", code)
	}
	if code := statusOf(f.URL + "/api/user/1"); code != http.StatusServiceUnavailable {
		t.Fatalf("route without known instances: got %d, want 503", code)
	}

	agent.Restart()
	register(t, agent.Client(), "user", startBackend(t, "user-1", nil))
	f.WaitReady()
	waitForInstances(t, f, "/api/user/1", 1)
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/good.hcl"
	bad := dir + "/bad.hcl"
	writeFile(t, good, "route \"users\" {\n  path_prefix = \"/api/user\"\n  service = \"user\"\n}\n")
	writeFile(t, bad, "route \"users\" {\n  path_prefix = \"api/user\"\n  service = \"user\"\n}\nservice \"user\" {\n  balance = \"fastest\"\n}\n")

	out, err := exec.Command(ferryBin, "validate", "-config", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration is valid") {
		t.Fatalf("valid config: got %v %q", err, out)
	}
	out, err = exec.Command(ferryBin, "validate", "-config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("invalid config: got err %v, want exit 1; output %q", err, out)
	}
	for _, want := range []string{bad + ":2,17", bad + ":6,13"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("diagnostics %q do not contain %q", out, want)
		}
	}
	out, _ = exec.Command(ferryBin, "version").CombinedOutput()
	if !strings.HasPrefix(string(out), "ferry ") {
		t.Errorf("version: got %q", out)
	}
}

// TestUnusedServiceBlockWarns: a service block no route names ("users"
// while the route says "user") is a warning, not an error: `ferry
// validate` prints it with its position and the likely intended name and
// exits 0; `ferry run` logs it at start and again at each reload that
// still has it, and keeps serving.
func TestUnusedServiceBlockWarns(t *testing.T) {
	agent := consultest.Start(t)
	register(t, agent.Client(), "user", startBackend(t, "user-1", nil))
	cfg := basicConfig + "service \"users\" {\n  retries = 1\n}\n"
	const warning = `warning: Service block not used by any route: No route names service \"users\", so this block tunes nothing. Did you mean \"user\"?`

	f := startFerry(t, agent.HTTPAddr, cfg)
	f.WaitReady()
	out, err := exec.Command(ferryBin, "validate", "-config", f.Config).CombinedOutput()
	at := fmt.Sprintf("%s:%d,9: ", f.Config, strings.Count(basicConfig, "\n")+1)
	if err != nil || !strings.Contains(string(out), "configuration is valid") ||
		!strings.Contains(string(out), at+strings.ReplaceAll(warning, `\"`, `"`)) {
		t.Errorf("ferry validate: %v\n%s", err, out)
	}
	waitForInstances(t, f, "/api/user/1", 1)
	logged := func() int {
		n := 0
		for _, line := range strings.Split(f.Logs(), "\n") {
			if strings.Contains(line, "[WARN]  ferry") && strings.Contains(line, "configuration warning:") && strings.Contains(line, warning) {
				n++
			}
		}
		return n
	}
	if n := logged(); n != 1 {
		t.Errorf("ferry run: the warning logged %d times at start, want once:\n%s", n, f.Logs())
	}
	if s, body := post(t, f.AdminURL+"/v1/reload"); s != 200 {
		t.Fatalf("reload: %d %s", s, body)
	}
	if n := logged(); n != 2 {
		t.Errorf("after a reload: the warning logged %d times, want twice:\n%s", n, f.Logs())
	}
	// The reload's one line says what changed: nothing here.
	if !regexp.MustCompile(`\[INFO\]  ferry\.reload: configuration reloaded: trigger="admin API" routes=1 took=\S+ changes=none\n`).MatchString(f.Logs()) {
		t.Errorf("no one-line reload report with changes=none:\n%s", f.Logs())
	}
}

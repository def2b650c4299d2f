package compose

import (
	"debug/buildinfo"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxImageSize is the size ferry:dev must stay under: three static Go
// binaries on scratch (27.6 MB when this was written).
const maxImageSize = 40 << 20

// TestImage checks the images `make image` built, as the README describes
// them: non-root, no shell (exec-form HEALTHCHECK by the static probe),
// ferry as entry point, small, and every binary static (CGO_ENABLED=0, so it
// runs on scratch, which has no libc).
func TestImage(t *testing.T) {
	if os.Getenv("FERRY_COMPOSE") != "1" {
		t.Skip("the image test runs with FERRY_COMPOSE=1 after make image (make compose-test)")
	}
	var img struct {
		Size   int64
		Config struct {
			User        string
			Entrypoint  []string
			Cmd         []string
			Healthcheck struct{ Test []string }
		}
	}
	out, err := docker(30*time.Second, "image", "inspect", "-f", "{{json .}}", "ferry:dev")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &img); err != nil {
		t.Fatalf("docker image inspect ferry:dev: %v", err)
	}
	c := img.Config
	if c.User != "65532:65532" {
		t.Errorf("ferry:dev runs as %q, want 65532:65532 (non-root)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/ferry"}) || !slices.Equal(c.Cmd, []string{"run", "-config", "/etc/ferry"}) {
		t.Errorf("ferry:dev starts %v %v, want /usr/local/bin/ferry run -config /etc/ferry", c.Entrypoint, c.Cmd)
	}
	// "CMD" is the exec form; "CMD-SHELL" would need /bin/sh, which
	// scratch does not have.
	if len(c.Healthcheck.Test) < 2 || c.Healthcheck.Test[0] != "CMD" || c.Healthcheck.Test[1] != "/usr/local/bin/probe" {
		t.Errorf("ferry:dev's HEALTHCHECK is %v, want the exec form of /usr/local/bin/probe", c.Healthcheck.Test)
	}
	if img.Size > maxImageSize {
		t.Errorf("ferry:dev is %.1f MB, want under %d MB", float64(img.Size)/1e6, maxImageSize>>20)
	}
	t.Logf("ferry:dev: %.1f MB (docker's figure: %d bytes), user %s, HEALTHCHECK %v", float64(img.Size)/1e6, img.Size, c.User, c.Healthcheck.Test)

	version, err := docker(time.Minute, "run", "--rm", "--name", "ferrycompose-version-"+pid(), "ferry:dev", "version")
	if err != nil || !strings.HasPrefix(version, "ferry ") {
		t.Errorf("docker run --rm ferry:dev version: %q %v, want ferry's version", version, err)
	}
	t.Logf("docker run --rm ferry:dev version: %s", version)

	// No shell: an image that had one would be larger to audit and the
	// HEALTHCHECK could have silently depended on it.
	name := "ferrycompose-noshell-" + pid()
	defer docker(30*time.Second, "rm", "-f", name)
	if out, err := docker(time.Minute, "run", "--name", name, "--entrypoint", "/bin/sh", "ferry:dev", "-c", "true"); err == nil {
		t.Errorf("ferry:dev has a shell (/bin/sh ran: %q), want none (scratch)", out)
	}

	if user, err := docker(30*time.Second, "image", "inspect", "-f", "{{.Config.User}}", "ferry-consul:dev"); err != nil || user != "65532:65532" {
		t.Errorf("ferry-consul:dev runs as %q (%v), want 65532:65532", user, err)
	}

	// The binaries make image packed (bin/image, its build context).
	for _, bin := range []string{"ferry", "demo-backend", "probe", "consul"} {
		path := filepath.Join("..", "..", "bin", "image", bin)
		info, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run make image first)", path, err)
			continue
		}
		cgo := ""
		for _, s := range info.Settings {
			if s.Key == "CGO_ENABLED" {
				cgo = s.Value
			}
		}
		if cgo != "0" {
			t.Errorf("%s was built with CGO_ENABLED=%q, want 0 (static, for scratch)", path, cgo)
		}
	}
}

// pid names a container after this test process, so that parallel runs on
// one engine do not collide and leftovers can be told apart.
func pid() string { return strconv.Itoa(os.Getpid()) }

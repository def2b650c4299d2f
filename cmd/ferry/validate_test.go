package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateWarnsUnusedService: a service block no route names is a
// warning with its file:line:col on stderr; the configuration stays valid.
func TestValidateWarnsUnusedService(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.hcl")
	src := "service \"book\" {\n  retries = 1\n}\nroute \"books\" {\n  path_prefix = \"/books\"\n  service     = \"books\"\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := validateCommand([]string{"-config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "configuration is valid") {
		t.Errorf("stdout %q, want it valid", stdout.String())
	}
	want := path + `:1,9: warning: Service block not used by any route: No route names service "book"`
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), `Did you mean "books"?`) {
		t.Errorf("stderr:\n%s\nwant it to contain %q and the near name", stderr.String(), want)
	}
}

package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadDirectory(t *testing.T) {
	cfg := load(t, "testdata/dir/ok")

	var names []string
	for _, f := range cfg.Files {
		if !filepath.IsAbs(f) {
			t.Errorf("Files: got %q, want absolute paths", f)
		}
		names = append(names, filepath.Base(f))
	}
	// Not README.txt (not *.hcl), .editor-backup.hcl (hidden) nor
	// notafile.hcl (a directory).
	if want := []string{"00-base.hcl", "10-user.hcl", "20-order.hcl"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Files: got %q, want %q", names, want)
	}
	if cfg.Listen != "127.0.0.1:18080" || cfg.Admin != "" {
		t.Errorf("got listen %q admin %q, want 127.0.0.1:18080 and \"\"", cfg.Listen, cfg.Admin)
	}
	if cfg.Consul.Address != "127.0.0.1:18500" || cfg.Log.Format != "json" {
		t.Errorf("got consul address %q log format %q, want 127.0.0.1:18500 and json", cfg.Consul.Address, cfg.Log.Format)
	}
	var routes []string
	for _, r := range cfg.Routes {
		routes = append(routes, r.Name)
	}
	if want := []string{"users", "orders"}; !reflect.DeepEqual(routes, want) {
		t.Errorf("routes: got %q, want %q (files in lexical order)", routes, want)
	}
	if got := cfg.Services["user"].Retries; got != 1 {
		t.Errorf("user retries: got %d, want 1", got)
	}
	if got, want := cfg.Services["order"], DefaultService("order"); !reflect.DeepEqual(got, want) {
		t.Errorf("order: got %+v, want %+v", got, want)
	}
}

func TestLoadDirectoryConflicts(t *testing.T) {
	cfg, diags := Load("testdata/dir/conflict")
	if cfg != nil {
		t.Errorf("got a Config, want nil")
	}
	const a, b = "testdata/dir/conflict/a.hcl", "testdata/dir/conflict/b.hcl"
	want := []string{
		b + `:1,1: Duplicate listen attribute: The top-level attribute listen may be set in only one file; first defined here: ` + a + `:1,1.`,
		b + `:3,1: Duplicate consul block: Only one consul block is allowed; first defined here: ` + a + `:3,1.`,
		b + `:7,1: Duplicate service "user": A service may have only one service block; first defined here: ` + a + `:7,1.`,
		b + `:9,1: Duplicate route "users": Route names must be unique; first defined here: ` + a + `:9,1.`,
		b + `:15,17: Duplicate route: Route "users2" matches the same host (any host) and path_prefix ("/api/user") as route "users", so it could never be chosen; first defined here: ` + a + `:10,17.`,
		b + `:19,1: Duplicate local_service block: Only one local_service block is allowed; first defined here: ` + a + `:14,1.`,
	}
	got := strings.Split(diags.Error(), "\n")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// writeFiles creates a directory holding files (name to content).
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // nil: path does not exist
		file  string            // load this file of the directory, not the directory
		want  []string          // each line, %s standing for the directory
	}{
		{name: "no such path",
			want: []string{"Cannot read configuration: stat %s/missing: no such file or directory."}},
		{name: "empty directory", files: map[string]string{"notes.txt": ""},
			want: []string{"No configuration files: The directory %s holds no *.hcl file; give a .hcl file or a directory of them."}},
		{name: "errors in every file reported",
			files: map[string]string{
				"a.hcl": "listen = \"127.0.0.1:80\"\nroute \"x\" {\n",
				"b.hcl": "admin = 1\n",
				"c.hcl": "listen = \"127.0.0.1:81\"\n",
			},
			want: []string{
				"%s/a.hcl:2,11: Unclosed configuration block: There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file.",
				"%s/b.hcl:1,9: Invalid admin address: The admin address must be a host and port such as \"127.0.0.1:8080\" or \":8080\", not \"1\"; \"\" disables the admin API.",
			}},
		{name: "file given directly, any extension", files: map[string]string{"ferry.conf": "listen = 1\n"},
			file: "ferry.conf",
			want: []string{"%s/ferry.conf:1,10: Invalid listen address: The listen address must be a host and port such as \"127.0.0.1:8080\" or \":8080\", not \"1\"."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dir, path string
			if tc.files == nil {
				dir = t.TempDir()
				path = filepath.Join(dir, "missing")
			} else {
				dir = writeFiles(t, tc.files)
				path = filepath.Join(dir, tc.file)
			}
			cfg, diags := Load(path)
			if cfg != nil {
				t.Errorf("got a Config, want nil")
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "%s", dir))
			}
			if got := strings.Split(diags.Error(), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadSymlinkedFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"real.conf": "listen = \"127.0.0.1:1\"\n"})
	if err := os.Symlink(filepath.Join(dir, "real.conf"), filepath.Join(dir, "link.hcl")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	cfg := load(t, dir)
	if cfg.Listen != "127.0.0.1:1" || len(cfg.Files) != 1 || filepath.Base(cfg.Files[0]) != "link.hcl" {
		t.Errorf("got listen %q files %q, want 127.0.0.1:1 from link.hcl", cfg.Listen, cfg.Files)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	cfg := load(t, "testdata/empty.hcl")
	cfg.Files = nil
	if want := Default(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
}

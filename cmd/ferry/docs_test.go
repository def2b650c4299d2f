package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocsLinksResolve: every relative link in the README and docs/ points
// at a file of the repository.
func TestDocsLinksResolve(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links %s, which does not exist", filepath.Base(f), target)
			}
		}
	}
}

// TestQuickStartListsWhatCIInstalls: every Debian package .ci/run installs
// for make test is named in the README's quick-start table, so a reader on
// another machine knows what make test needs.
func TestQuickStartListsWhatCIInstalls(t *testing.T) {
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	quick, _, _ := strings.Cut(string(readme), "## Command line")
	pkgs := regexp.MustCompile(`need\+=\(([a-z0-9.+-]+)\)`).FindAllStringSubmatch(string(ci), -1)
	if len(pkgs) < 5 {
		t.Fatalf(".ci/run: found %d packages it installs", len(pkgs))
	}
	var column []string // the table's last column: the Debian packages
	for _, line := range strings.Split(quick, "\n") {
		if cells := strings.Split(strings.Trim(line, "| "), "|"); strings.HasPrefix(line, "|") && len(cells) >= 3 {
			column = append(column, cells[len(cells)-1])
		}
	}
	for _, m := range pkgs {
		if !slices.ContainsFunc(column, func(c string) bool { return strings.Contains(c, "`"+m[1]+"`") }) {
			t.Errorf(".ci/run installs %s, which the README's quick-start table does not list", m[1])
		}
	}
}

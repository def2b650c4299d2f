package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

const twoErrors = "listen = \"x\"\nservice \"s\" {\n  retries = 99\n}\n"

func TestDiagnosticsFormats(t *testing.T) {
	_, diags := Parse("two.hcl", []byte(twoErrors))
	lines := []string{
		`two.hcl:1,10: Invalid listen address: The listen address must be a host and port such as "127.0.0.1:8080" or ":8080", not "x".`,
		`two.hcl:3,13: Number out of range: The retries attribute must be from 0 to 10, not 99.`,
	}
	t.Run("Error", func(t *testing.T) {
		if got, want := diags.Error(), strings.Join(lines, "\n"); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("String", func(t *testing.T) {
		if got, want := diags.String(), strings.Join(lines, "\n")+"\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("Format color", func(t *testing.T) {
		var b strings.Builder
		if err := diags.Format(&b, true); err != nil {
			t.Fatal(err)
		}
		want := "\x1b[1mtwo.hcl:1,10:\x1b[0m \x1b[1;31mInvalid listen address\x1b[0m: "
		if got := b.String(); !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 2 {
			t.Errorf("got %q, want 2 lines starting with %q", got, want)
		}
	})
	t.Run("FormatSource", func(t *testing.T) {
		var b strings.Builder
		if err := diags.FormatSource(&b, 78, false); err != nil {
			t.Fatal(err)
		}
		got := b.String()
		for _, want := range []string{"Error: Invalid listen address", "on two.hcl line 1", `listen = "x"`, "retries = 99"} {
			if !strings.Contains(got, want) {
				t.Errorf("got %q, want it to contain %q", got, want)
			}
		}
	})
	t.Run("HCL and Len", func(t *testing.T) {
		if got := diags.Len(); got != 2 {
			t.Errorf("Len: got %d, want 2", got)
		}
		if got := diags.HCL()[1].Subject.Start.Line; got != 3 {
			t.Errorf("HCL()[1] line: got %d, want 3", got)
		}
	})
	t.Run("errors.As", func(t *testing.T) {
		var err error = diags
		var target *Diagnostics
		if !errors.As(err, &target) || target.Len() != 2 {
			t.Errorf("errors.As: got %v, want the *Diagnostics", target)
		}
	})
}

func TestNilDiagnostics(t *testing.T) {
	var d *Diagnostics
	if d.HasErrors() || d.Len() != 0 || d.HCL() != nil || d.Error() != "" || d.String() != "" {
		t.Errorf("got a non-empty nil *Diagnostics")
	}
	if err := d.Format(&strings.Builder{}, true); err != nil {
		t.Errorf("Format: got %v, want nil", err)
	}
	if err := d.FormatSource(&strings.Builder{}, 0, false); err != nil {
		t.Errorf("FormatSource: got %v, want nil", err)
	}
}

func TestDiagnosticLines(t *testing.T) {
	rng := func(file string, line, col int) *hcl.Range {
		return &hcl.Range{Filename: file, Start: hcl.Pos{Line: line, Column: col}, End: hcl.Pos{Line: line, Column: col + 1}}
	}
	d := newDiagnostics(hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Late", Detail: "In\nthe  second file.", Subject: rng("b.hcl", 1, 1)},
		{Severity: hcl.DiagWarning, Summary: "Odd", Detail: "Only a warning.", Subject: rng("a.hcl", 2, 5)},
		{Severity: hcl.DiagError, Summary: "Early", Subject: rng("a.hcl", 2, 3)},
		{Severity: hcl.DiagError, Summary: "Unknown file", Subject: rng("c.hcl", 1, 1)},
		{Severity: hcl.DiagError, Summary: "No range", Detail: "Cannot read."},
	}, nil, []string{"b.hcl", "a.hcl"})
	want := []string{
		"No range: Cannot read.",
		"b.hcl:1,1: Late: In the second file.",
		"a.hcl:2,3: Early",
		"a.hcl:2,5: warning: Odd: Only a warning.",
		"c.hcl:1,1: Unknown file",
	}
	if got := strings.Split(d.Error(), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !d.HasErrors() {
		t.Errorf("HasErrors: got false, want true")
	}
	warnOnly := newDiagnostics(hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "w"}}, nil, nil)
	if warnOnly.HasErrors() {
		t.Errorf("HasErrors with only a warning: got true, want false")
	}
	if newDiagnostics(nil, nil, nil) != nil {
		t.Errorf("newDiagnostics(nil): got non-nil, want nil")
	}
}

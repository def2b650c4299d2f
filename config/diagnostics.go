package config

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Diagnostics is every problem found while loading a configuration, sorted by
// file (in the order the files were read), line and column. It is an error:
// Error returns one line per diagnostic, in the form
//
//	FILE:LINE,COL: Summary: Detail
//
// which is what `ferry validate` prints. A nil *Diagnostics has no problems.
// A Diagnostics is not mutated after Load or Parse returns it, so it is safe
// for concurrent use.
type Diagnostics struct {
	diags hcl.Diagnostics
	files map[string]*hcl.File // by file name as written in the diagnostics
}

// newDiagnostics sorts diags by the position of their file in order (files
// not in order last), then by position; diagnostics without a subject first.
// It returns nil when diags is empty.
func newDiagnostics(diags hcl.Diagnostics, files map[string]*hcl.File, order []string) *Diagnostics {
	if len(diags) == 0 {
		return nil
	}
	rank := make(map[string]int, len(order))
	for i, name := range order {
		if _, ok := rank[name]; !ok {
			rank[name] = i
		}
	}
	fileRank := func(name string) int {
		if r, ok := rank[name]; ok {
			return r
		}
		return len(order)
	}
	sorted := make(hcl.Diagnostics, len(diags))
	copy(sorted, diags)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Subject, sorted[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			ra, rb := fileRank(a.Filename), fileRank(b.Filename)
			if ra != rb {
				return ra < rb
			}
			return a.Filename < b.Filename
		case a.Start.Line != b.Start.Line:
			return a.Start.Line < b.Start.Line
		default:
			return a.Start.Column < b.Start.Column
		}
	})
	return &Diagnostics{diags: sorted, files: files}
}

// HCL returns the underlying diagnostics, sorted as described on Diagnostics.
// The caller must not modify them.
func (d *Diagnostics) HCL() hcl.Diagnostics {
	if d == nil {
		return nil
	}
	return d.diags
}

// Len returns the number of diagnostics, errors and warnings.
func (d *Diagnostics) Len() int {
	if d == nil {
		return 0
	}
	return len(d.diags)
}

// HasErrors reports whether any diagnostic is an error (rather than a
// warning). A configuration is usable only when HasErrors is false.
func (d *Diagnostics) HasErrors() bool {
	return d != nil && d.diags.HasErrors()
}

// Error returns every diagnostic, one per line, as FILE:LINE,COL: message,
// without a final newline.
func (d *Diagnostics) Error() string {
	return strings.TrimSuffix(d.String(), "\n")
}

// String returns every diagnostic, one per line, each line ending in a
// newline; it is "" for no diagnostics.
func (d *Diagnostics) String() string {
	var b strings.Builder
	_ = d.Format(&b, false)
	return b.String()
}

// ANSI escapes used by Format when color is on.
const (
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[1;33m"
	ansiReset  = "\x1b[0m"
)

// Format writes every diagnostic to w, one per line, as
//
//	FILE:LINE,COL: Summary: Detail
//
// (a warning has "warning: " before its summary; a diagnostic without a
// source range has no position). Newlines inside a detail are folded into
// spaces so that each diagnostic stays on one line. With color, the position
// is bold and the summary red (error) or yellow (warning).
func (d *Diagnostics) Format(w io.Writer, color bool) error {
	if d == nil {
		return nil
	}
	for _, diag := range d.diags {
		if _, err := io.WriteString(w, formatLine(diag, color)+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// FormatSource writes every diagnostic to w in HCL's long form: the message,
// the source lines it refers to with the offending range marked, and the
// detail wrapped at width columns (0: no wrapping). It is meant for humans
// at a terminal; Format is the stable, greppable form.
func (d *Diagnostics) FormatSource(w io.Writer, width uint, color bool) error {
	if d == nil {
		return nil
	}
	return hcl.NewDiagnosticTextWriter(w, d.files, width, color).WriteDiagnostics(d.diags)
}

// formatLine renders one diagnostic as a single line.
func formatLine(diag *hcl.Diagnostic, color bool) string {
	var b strings.Builder
	if diag.Subject != nil {
		if color {
			b.WriteString(ansiBold)
		}
		b.WriteString(posString(*diag.Subject))
		b.WriteString(":")
		if color {
			b.WriteString(ansiReset)
		}
		b.WriteString(" ")
	}
	summary := oneLine(diag.Summary)
	if diag.Severity == hcl.DiagWarning {
		summary = "warning: " + summary
	}
	if color {
		c := ansiRed
		if diag.Severity == hcl.DiagWarning {
			c = ansiYellow
		}
		summary = c + summary + ansiReset
	}
	b.WriteString(summary)
	if detail := oneLine(diag.Detail); detail != "" {
		b.WriteString(": ")
		b.WriteString(detail)
	}
	return b.String()
}

// oneLine folds runs of white space (newlines included) into single spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// posString formats the start of r as FILE:LINE,COL.
func posString(r hcl.Range) string {
	return fmt.Sprintf("%s:%d,%d", r.Filename, r.Start.Line, r.Start.Column)
}

// problem builds an error diagnostic.
func problem(subject hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  subject.Ptr(),
	}
}

// firstDefinedHere is the detail suffix of a duplicate's diagnostic,
// pointing back at the first occurrence.
func firstDefinedHere(first hcl.Range) string {
	return "first defined here: " + posString(first)
}

package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Load reads, merges, defaults and validates the configuration at path: a
// .hcl file, or a directory whose *.hcl files (not subdirectories, not names
// starting with ".") are read in lexical order and merged. In a directory,
// each top-level attribute may be set in one file only, there is at most one
// consul, log and local_service block in all, and service and route blocks
// add up, their names unique across files.
//
// Load returns a Config and no error diagnostics, or a nil Config and
// every problem found (it never stops at the first one). The diagnostics
// name files as path was given (joined with the file name for a directory);
// Config.Files holds absolute paths. Load is safe for concurrent use.
func Load(path string) (*Config, *Diagnostics) {
	names, diags := configFiles(path)
	if diags.HasErrors() {
		return nil, newDiagnostics(diags, nil, nil)
	}
	srcs := make([][]byte, 0, len(names))
	var read []string
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read configuration file",
				Detail:   err.Error() + ".",
			})
			continue
		}
		srcs = append(srcs, src)
		read = append(read, name)
	}
	cfg, d := parseAll(read, srcs, diags)
	if cfg != nil {
		for _, name := range read {
			abs, err := filepath.Abs(name)
			if err != nil {
				abs = name
			}
			cfg.Files = append(cfg.Files, abs)
		}
	}
	return cfg, d
}

// Parse decodes, defaults and validates one configuration file held in
// memory; filename is used in diagnostics only. It behaves as Load on a
// file, except that Config.Files is empty since nothing was read from disk.
// Parse is safe for concurrent use and never panics, whatever src holds.
func Parse(filename string, src []byte) (*Config, *Diagnostics) {
	return parseAll([]string{filename}, [][]byte{src}, nil)
}

// parseAll parses and decodes each file, merges them, then builds the
// Config. A file with syntax errors is not decoded, so that its
// diagnostics are the parser's and not a cascade from a half-read file; the
// other files are still checked.
func parseAll(names []string, srcs [][]byte, diags hcl.Diagnostics) (*Config, *Diagnostics) {
	p := hclparse.NewParser()
	var raws []*rawFile
	for i, name := range names {
		f, more := p.ParseHCL(srcs[i], name)
		diags = append(diags, more...)
		if more.HasErrors() || f == nil {
			continue
		}
		raw := &rawFile{}
		diags = append(diags, gohcl.DecodeBody(f.Body, nil, raw)...)
		raws = append(raws, raw)
	}
	// Carry on after errors: unknown attributes or a file that did not parse
	// do not stop the other values from being checked.
	merged, more := merge(raws)
	diags = append(diags, more...)
	cfg, more := build(merged)
	diags = append(diags, more...)
	if diags.HasErrors() {
		return nil, newDiagnostics(diags, p.Files(), names)
	}
	diags = append(diags, unusedServices(merged.Services, cfg)...) // unused.go; once the errors are fixed
	return cfg, newDiagnostics(diags, p.Files(), names)
}

// configFiles lists the files that make up the configuration at path.
func configFiles(path string) ([]string, hcl.Diagnostics) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration",
			Detail:   err.Error() + ".",
		}}
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration directory",
			Detail:   err.Error() + ".",
		}}
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".hcl") || strings.HasPrefix(name, ".") {
			continue
		}
		full := filepath.Join(path, name)
		if !isFile(full, e) {
			continue
		}
		names = append(names, full)
	}
	if len(names) == 0 {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "No configuration files",
			Detail:   fmt.Sprintf("The directory %s holds no *.hcl file; give a .hcl file or a directory of them.", path),
		}}
	}
	return names, nil
}

// isFile reports whether the directory entry is a regular file, following a
// symbolic link.
func isFile(full string, e fs.DirEntry) bool {
	if e.Type().IsRegular() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	info, err := os.Stat(full)
	return err == nil && info.Mode().IsRegular()
}

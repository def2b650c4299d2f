package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/ferry-proxy/ferry/config"
)

func validateCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file or directory (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "ferry validate: -config is required")
		return 2
	}
	_, warnings, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if warnings != "" {
		fmt.Fprintln(stderr, warnings) // FILE:LINE,COL: warning: …; still valid
	}
	fmt.Fprintln(stdout, "configuration is valid")
	return 0
}

// loadConfig loads a configuration; its error, when not nil, prints every
// diagnostic as FILE:LINE,COL: message, one per line. warnings holds the
// warnings of a valid configuration in the same form ("" when none).
func loadConfig(path string) (cfg *config.Config, warnings string, err error) {
	cfg, diags := config.Load(path)
	if diags != nil && diags.HasErrors() {
		return nil, "", diags
	}
	if diags != nil {
		warnings = diags.Error()
	}
	return cfg, warnings, nil
}

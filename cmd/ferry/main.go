// Command ferry is a sidecar HTTP reverse proxy driven by Consul service discovery.
//
//	ferry run -config PATH [-log-level LEVEL]
//	ferry validate -config PATH
//	ferry version
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:], stdout, stderr)
	case "validate":
		return validateCommand(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "ferry %s\n", version)
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "ferry: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  ferry run -config PATH [-log-level LEVEL]   run the proxy (PATH: a .hcl file or a directory of them)
  ferry validate -config PATH                check a configuration and print every problem
  ferry version                              print the version

Consul's environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_HTTP_SSL,
CONSUL_CACERT, ...) are honoured; the config's consul block overrides them.
`)
}

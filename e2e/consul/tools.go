//go:build tools

// Package consul pins the Consul agent that the e2e tests and `make demo` run.
package consul

import _ "github.com/hashicorp/consul"

// Package e2e holds ferry's end-to-end tests: they start a real Consul agent
// (internal/consultest), real HTTP backends and the real ferry binary (built
// with -race), and drive them over HTTP and Consul's API. They never skip: a
// missing consul binary fails them with a hint to run `make consul`.
package e2e

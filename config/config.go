// Package config decodes, defaults and validates ferry's HCL configuration.
//
// It depends on nothing of ferry's own: Load returns plain, validated structs with
// defaults applied (durations as time.Duration), which cmd turns into each
// package's options.
//
// The language is HCL v2 native syntax (SPEC §3 and §10; docs/configuration.md lists
// every attribute with its type, default and meaning). Load reads a file or
// a directory of *.hcl files; Parse reads one file from memory. Either
// returns a complete Config, or nil and a *Diagnostics holding every problem
// found, each with the source range of the offending value, which prints as
//
//	FILE:LINE,COL: Summary: Detail
//
// one per line. Values are constants: there are no variables or functions.
// Durations are Go duration strings ("1m30s"); null means "not set".
package config

import (
	"net/netip"
	"time"
)

// Config is a whole, validated ferry configuration. A Config is never mutated
// after Load returns it, so it is safe to share between goroutines. Default
// returns the Config of an empty file.
type Config struct {
	Listen          string        // data-plane address; default "127.0.0.1:8080"
	Admin           string        // admin API address; "" disables it; default "127.0.0.1:9901"
	ShutdownTimeout time.Duration // default 15s
	Pprof           bool          // serve /debug/pprof/ on the admin listener; default false
	// FastLane serves everyday HTTP/1.1 requests with ferry's own parser;
	// false serves every connection through the net/http lane (an escape
	// hatch). Default true.
	FastLane bool
	// TrustedProxies are the peers whose X-Forwarded-*, Forwarded and
	// X-Real-IP headers ferry keeps (appending to X-Forwarded-For); from
	// any other peer it replaces them. Default empty: trust nobody. An IP
	// address is a single-address prefix.
	TrustedProxies []netip.Prefix
	Limits         Limits      // the limits block: see Limits
	Listeners      []*Listener // listener blocks in declaration order (tls.go); listen is one more, plain

	Consul Consul
	Log    Log

	// Services holds the tuning of every service that has a service block, and of
	// every service a route names without one (with defaults), keyed by name.
	Services map[string]*Service
	// Routes in the order they were declared (files in lexical order).
	Routes []*Route

	LocalService *LocalService // nil when there is no local_service block
	Redis        *Redis        // nil when there is no redis block (redis.go)

	// Files lists the files the configuration was read from, for reload watching:
	// absolute paths, in the order they were read. Empty after Parse.
	Files []string
}

// Consul is the consul block. Empty strings mean "use the environment"
// (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, ...).
type Consul struct {
	Address    string
	Datacenter string
	Token      string
	WaitTime   time.Duration // default 30s
	AllowStale bool          // default true
	UseCache   bool          // default false: use the agent cache ("cached" queries)
	// MaxWatchConnections bounds the connections ferry holds to the agent
	// (long-polls and everything else); above it discovery switches to one
	// change detector and targeted fetches. Default 64, at least 4.
	MaxWatchConnections int
	// SnapshotFile keeps the last known instance sets, for a start while
	// Consul does not answer; "" (default) keeps none.
	SnapshotFile string
	// SnapshotReady: /readyz answers 200 while every routed service is
	// served from the snapshot (stale); default true.
	SnapshotReady bool
	TokenFile     string    // a file holding the ACL token; default $CONSUL_HTTP_TOKEN_FILE (tls.go)
	TLS           ConsulTLS // the tls block (tls.go)
}

// Log is the log block.
type Log struct {
	Level     string // trace | debug | info | warn | error; default "info"
	Format    string // text | json; default "text"
	AccessLog string // stdout | stderr | off | a file path; default "stdout"
}

// Service is the tuning of one Consul service. DefaultService returns the
// tuning of a service that has no service block.
type Service struct {
	Name            string
	Tag             string
	Balance         string        // round_robin (default) | random | weighted | least_request
	ConnectTimeout  time.Duration // default 2s
	ResponseTimeout time.Duration // default 30s
	Retries         int           // 0 to MaxRetries; default 2
	MaxRequests     int           // requests in flight at most (queued beyond); 0: no cap; default 1024
	// MaxPendingRequests bounds the requests waiting for one of the
	// max_requests slots (503 beyond); 0: no queue; default 1024.
	MaxPendingRequests int
	QueueTimeout       time.Duration // the longest wait in that queue (then 503); default 5s
	HealthCheck        *HealthCheck  // nil when not configured
	Outlier            Outlier       // always set; defaults 5 and 30s
	// Health is the Consul health policy: "passing" (default) routes
	// instances whose checks all pass, "warning" also those with warnings.
	Health string
	// PanicThreshold (percent, 0–100; 0 = off, the default): when fewer
	// than this share of the Consul-routable instances pass ferry's own
	// checks, route to all of them (Envoy's panic mode).
	PanicThreshold int
	// Failover lists other datacenters, in order, whose instances serve
	// when the local datacenter has none routable; nil: no failover.
	Failover []string
	Protocol string       // as written: "" (unset) | http1 | http2 | grpc; see UpstreamProtocol (tls.go)
	TLS      *UpstreamTLS // TLS to the instances; nil: cleartext (tls.go; applied by cmd/ferry/upstream_tls.go)
}

// Health policies accepted by Service.Health.
const (
	HealthPassing = "passing"
	HealthWarning = "warning"
)

// Balancer names accepted by Service.Balance.
const (
	BalanceRoundRobin   = "round_robin"
	BalanceRandom       = "random"
	BalanceWeighted     = "weighted"
	BalanceLeastRequest = "least_request"
)

// HealthCheck configures ferry's own active HTTP checks of a service's
// instances. A health_check block without attributes has every default.
type HealthCheck struct {
	Path               string        // request path, may have a query; default "/health"
	Interval           time.Duration // default 5s
	Timeout            time.Duration // default 2s
	HealthyThreshold   int           // at least 1; default 2
	UnhealthyThreshold int           // at least 1; default 2
}

// Outlier configures passive checks (outlier ejection).
type Outlier struct {
	ConsecutiveFailures int           // at least 1; default 5
	BaseEjectionTime    time.Duration // default 30s
}

// Route maps requests to a Consul service. No two routes have the same Host
// and PathPrefix.
type Route struct {
	Name string
	// PathPrefix is canonical: it starts with "/", has no "//", "." or ".."
	// segment and only characters allowed unescaped in a URL path, and has no
	// trailing "/" unless it is "/" (the configuration's "/api/" becomes
	// "/api"; prefixes match whole path segments either way).
	PathPrefix  string
	Service     string
	StripPrefix bool
	Host        string // lower-case, without port or trailing dot, IPv6 without brackets; "" matches any host
	// MaxBodyBytes bounds a request body (413 beyond); 0: no limit;
	// default DefaultMaxBodyBytes (100 MiB).
	MaxBodyBytes int64

	Filters          []Filter          // in the order written (filters.go)
	Backends         []Backend         // never empty; weighted split (backends.go)
	HeaderConditions []HeaderCondition // all must match (backends.go)
	Compress         *Compress         // nil: no compress block (filters_part2.go)
	Cache            *Cache            // nil: no cache block (filters_part2.go)
}

// LocalService is the application ferry sits beside, registered in Consul (SPEC §10).
type LocalService struct {
	Name            string
	ID              string // default name-hostname-port
	Address         string // "" lets the agent use its node address
	Port            int    // 1 to 65535, required
	Tags            []string
	Meta            map[string]string
	Check           *LocalCheck   // nil when there is no check block
	DeregisterDelay time.Duration // default 2s; 0 drains at once
}

// LocalCheck is the Consul check registered with the local service. Exactly
// one of HTTP and TCP is set.
type LocalCheck struct {
	HTTP                    string        // an http:// or https:// URL Consul's agent GETs
	TCP                     string        // host:port Consul's agent connects to
	Interval                time.Duration // default 5s
	Timeout                 time.Duration // default 2s
	DeregisterCriticalAfter time.Duration // default 1m; 0 never deregisters
}

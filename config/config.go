// Package config decodes, defaults and validates ferry's HCL configuration.
//
// It depends on nothing of ferry's own: Load returns plain, validated structs with
// defaults applied (durations as time.Duration), which cmd turns into each
// package's options.
package config

import "time"

// Config is a whole, validated ferry configuration. A Config is never mutated
// after Load returns it, so it is safe to share between goroutines.
type Config struct {
	Listen          string        // data-plane address; default "127.0.0.1:8080"
	Admin           string        // admin API address; "" disables it; default "127.0.0.1:9901"
	ShutdownTimeout time.Duration // default 15s

	Consul Consul
	Log    Log

	// Services holds the tuning of every service that has a service block, and of
	// every service a route names without one (with defaults), keyed by name.
	Services map[string]*Service
	// Routes in the order they were declared (files in lexical order).
	Routes []*Route

	LocalService *LocalService // nil when there is no local_service block

	// Files lists the files the configuration was read from, for reload watching.
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
}

// Log is the log block.
type Log struct {
	Level     string // trace | debug | info | warn | error; default "info"
	Format    string // text | json; default "text"
	AccessLog string // stdout | stderr | off | a file path; default "stdout"
}

// Service is the tuning of one Consul service.
type Service struct {
	Name            string
	Tag             string
	Balance         string        // round_robin | random | weighted | least_request
	ConnectTimeout  time.Duration // default 2s
	ResponseTimeout time.Duration // default 30s
	Retries         int           // default 2
	HealthCheck     *HealthCheck  // nil when not configured
	Outlier         Outlier       // always set; defaults 5 and 30s
}

// Balancer names accepted by Service.Balance.
const (
	BalanceRoundRobin   = "round_robin"
	BalanceRandom       = "random"
	BalanceWeighted     = "weighted"
	BalanceLeastRequest = "least_request"
)

// HealthCheck configures ferry's own active HTTP checks of a service's instances.
type HealthCheck struct {
	Path               string        // default "/health"
	Interval           time.Duration // default 5s
	Timeout            time.Duration // default 2s
	HealthyThreshold   int           // default 2
	UnhealthyThreshold int           // default 2
}

// Outlier configures passive checks (outlier ejection).
type Outlier struct {
	ConsecutiveFailures int           // default 5
	BaseEjectionTime    time.Duration // default 30s
}

// Route maps requests to a Consul service.
type Route struct {
	Name        string
	PathPrefix  string // canonical: starts with "/", no trailing "/" unless it is "/"
	Service     string
	StripPrefix bool
	Host        string // lower-case, without port; "" matches any host
}

// LocalService is the application ferry sits beside, registered in Consul (SPEC §10).
type LocalService struct {
	Name            string
	ID              string // default name-hostname-port
	Address         string
	Port            int
	Tags            []string
	Meta            map[string]string
	Check           *LocalCheck   // nil when there is no check block
	DeregisterDelay time.Duration // default 2s
}

// LocalCheck is the Consul check registered with the local service.
type LocalCheck struct {
	HTTP                    string
	TCP                     string
	Interval                time.Duration // default 5s
	Timeout                 time.Duration // default 2s
	DeregisterCriticalAfter time.Duration // default 1m
}

package config

import "time"

// Defaults of the configuration language; docs/configuration.md lists them with
// their attributes.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultAdmin           = "127.0.0.1:9901"
	DefaultShutdownTimeout = 15 * time.Second
	DefaultFastLane        = true

	DefaultWaitTime   = 30 * time.Second
	DefaultAllowStale = true
	DefaultUseCache   = false
	// DefaultMaxWatchConnections stays well under a Consul agent's default
	// limits.http_max_conns_per_client (200).
	DefaultMaxWatchConnections = 64
	// MinMaxWatchConnections leaves room for the change detector (2
	// long-polls), a fetch and the local-service registration.
	MinMaxWatchConnections = 4
	DefaultSnapshotReady   = true
	// MaxWaitTime is the longest blocking query wait Consul honours.
	MaxWaitTime = 10 * time.Minute

	DefaultLogLevel  = "info"
	DefaultLogFormat = "text"
	DefaultAccessLog = "stdout"

	DefaultBalance         = BalanceRoundRobin
	DefaultConnectTimeout  = 2 * time.Second
	DefaultResponseTimeout = 30 * time.Second
	DefaultRetries         = 2
	// MaxRetries bounds Service.Retries.
	MaxRetries = 10

	DefaultHealthPath         = "/health"
	DefaultHealthInterval     = 5 * time.Second
	DefaultHealthTimeout      = 2 * time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 2

	DefaultConsecutiveFailures = 5
	DefaultBaseEjectionTime    = 30 * time.Second

	DefaultCheckInterval                = 5 * time.Second
	DefaultCheckTimeout                 = 2 * time.Second
	DefaultCheckDeregisterCriticalAfter = time.Minute
	DefaultDeregisterDelay              = 2 * time.Second
)

// The values accepted by log.level, log.format and service.balance.
var (
	logLevels      = []string{"trace", "debug", "info", "warn", "error"}
	logFormats     = []string{"text", "json"}
	balancers      = []string{BalanceRoundRobin, BalanceRandom, BalanceWeighted, BalanceLeastRequest}
	healthPolicies = []string{HealthPassing, HealthWarning}
)

// Default returns the configuration of an empty file: every default, no
// services, no routes, no local service. Each call returns a new Config.
func Default() *Config {
	return &Config{
		Listen:          DefaultListen,
		Admin:           DefaultAdmin,
		ShutdownTimeout: DefaultShutdownTimeout,
		FastLane:        DefaultFastLane,
		Consul: Consul{
			WaitTime:   DefaultWaitTime,
			AllowStale: DefaultAllowStale,
			UseCache:   DefaultUseCache,

			MaxWatchConnections: DefaultMaxWatchConnections,
			SnapshotReady:       DefaultSnapshotReady,
		},
		Log: Log{
			Level:     DefaultLogLevel,
			Format:    DefaultLogFormat,
			AccessLog: DefaultAccessLog,
		},
		Services: make(map[string]*Service),
		Limits:   DefaultLimits(),
	}
}

// DefaultService returns the tuning of a service that has no service block:
// every default, no active health check. Each call returns a new Service.
func DefaultService(name string) *Service {
	return &Service{
		Name:               name,
		Balance:            DefaultBalance,
		ConnectTimeout:     DefaultConnectTimeout,
		ResponseTimeout:    DefaultResponseTimeout,
		Retries:            DefaultRetries,
		MaxRequests:        DefaultMaxRequests,
		MaxPendingRequests: DefaultMaxPendingRequests,
		QueueTimeout:       DefaultQueueTimeout,
		Health:             HealthPassing,
		Outlier: Outlier{
			ConsecutiveFailures: DefaultConsecutiveFailures,
			BaseEjectionTime:    DefaultBaseEjectionTime,
		},
	}
}

// defaultHealthCheck is a health_check block with no attributes.
func defaultHealthCheck() *HealthCheck {
	return &HealthCheck{
		Path:               DefaultHealthPath,
		Interval:           DefaultHealthInterval,
		Timeout:            DefaultHealthTimeout,
		HealthyThreshold:   DefaultHealthyThreshold,
		UnhealthyThreshold: DefaultUnhealthyThreshold,
	}
}

// defaultLocalCheck is a check block with neither http nor tcp yet.
func defaultLocalCheck() *LocalCheck {
	return &LocalCheck{
		Interval:                DefaultCheckInterval,
		Timeout:                 DefaultCheckTimeout,
		DeregisterCriticalAfter: DefaultCheckDeregisterCriticalAfter,
	}
}

package config

import "github.com/hashicorp/hcl/v2"

// The raw* types are the HCL schema, decoded by gohcl.DecodeBody. Every
// attribute is kept as an *hcl.Attribute rather than a Go value so that
// decode.go can give its own messages for wrong types and point each
// diagnostic at the exact value; gohcl still reports unknown attributes and
// blocks, missing labels and syntax errors. A nil attribute was not set.
//
// Blocks that may appear only once are decoded as slices too, so that
// duplicates within a file and across files get the same diagnostic.

// rawFile is one configuration file.
type rawFile struct {
	Listen          *hcl.Attribute `hcl:"listen,optional"`
	Admin           *hcl.Attribute `hcl:"admin,optional"`
	ShutdownTimeout *hcl.Attribute `hcl:"shutdown_timeout,optional"`
	Pprof           *hcl.Attribute `hcl:"pprof,optional"`
	FastLane        *hcl.Attribute `hcl:"fast_lane,optional"`
	TrustedProxies  *hcl.Attribute `hcl:"trusted_proxies,optional"`

	Consul       []*rawConsul       `hcl:"consul,block"`
	Log          []*rawLog          `hcl:"log,block"`
	Services     []*rawService      `hcl:"service,block"`
	Routes       []*rawRoute        `hcl:"route,block"`
	LocalService []*rawLocalService `hcl:"local_service,block"`
	Limits       []*rawLimits       `hcl:"limits,block"`   // limits.go
	Listeners    []*rawListener     `hcl:"listener,block"` // tls.go
	Redis        []*rawRedis        `hcl:"redis,block"`    // redis.go
}

type rawConsul struct {
	Address    *hcl.Attribute `hcl:"address,optional"`
	Datacenter *hcl.Attribute `hcl:"datacenter,optional"`
	Token      *hcl.Attribute `hcl:"token,optional"`
	WaitTime   *hcl.Attribute `hcl:"wait_time,optional"`
	AllowStale *hcl.Attribute `hcl:"allow_stale,optional"`
	UseCache   *hcl.Attribute `hcl:"use_cache,optional"`
	// Discovery at scale and cold start (SPEC §14).
	MaxWatchConnections *hcl.Attribute  `hcl:"max_watch_connections,optional"`
	SnapshotFile        *hcl.Attribute  `hcl:"snapshot_file,optional"`
	SnapshotReady       *hcl.Attribute  `hcl:"snapshot_ready,optional"`
	TokenFile           *hcl.Attribute  `hcl:"token_file,optional"` // tls.go
	TLS                 []*rawConsulTLS `hcl:"tls,block"`           // tls.go

	DefRange hcl.Range `hcl:",def_range"`
}

type rawLog struct {
	Level     *hcl.Attribute `hcl:"level,optional"`
	Format    *hcl.Attribute `hcl:"format,optional"`
	AccessLog *hcl.Attribute `hcl:"access_log,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawService struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Tag                *hcl.Attribute `hcl:"tag,optional"`
	Balance            *hcl.Attribute `hcl:"balance,optional"`
	ConnectTimeout     *hcl.Attribute `hcl:"connect_timeout,optional"`
	ResponseTimeout    *hcl.Attribute `hcl:"response_timeout,optional"`
	Retries            *hcl.Attribute `hcl:"retries,optional"`
	MaxRequests        *hcl.Attribute `hcl:"max_requests,optional"`
	MaxPendingRequests *hcl.Attribute `hcl:"max_pending_requests,optional"`
	QueueTimeout       *hcl.Attribute `hcl:"queue_timeout,optional"`
	// Consul-native routing (SPEC §14).
	Health         *hcl.Attribute `hcl:"health,optional"`
	PanicThreshold *hcl.Attribute `hcl:"panic_threshold,optional"`

	HealthCheck []*rawHealthCheck `hcl:"health_check,block"`
	Outlier     []*rawOutlier     `hcl:"outlier,block"`
	Failover    []*rawFailover    `hcl:"failover,block"`
	Protocol    *hcl.Attribute    `hcl:"protocol,optional"` // tls.go
	TLS         []*rawUpstreamTLS `hcl:"tls,block"`         // tls.go
}

type rawFailover struct {
	Datacenters *hcl.Attribute `hcl:"datacenters,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawHealthCheck struct {
	Path               *hcl.Attribute `hcl:"path,optional"`
	Interval           *hcl.Attribute `hcl:"interval,optional"`
	Timeout            *hcl.Attribute `hcl:"timeout,optional"`
	HealthyThreshold   *hcl.Attribute `hcl:"healthy_threshold,optional"`
	UnhealthyThreshold *hcl.Attribute `hcl:"unhealthy_threshold,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawOutlier struct {
	ConsecutiveFailures *hcl.Attribute `hcl:"consecutive_failures,optional"`
	BaseEjectionTime    *hcl.Attribute `hcl:"base_ejection_time,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawRoute struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	PathPrefix   *hcl.Attribute `hcl:"path_prefix,optional"`
	Service      *hcl.Attribute `hcl:"service,optional"`
	StripPrefix  *hcl.Attribute `hcl:"strip_prefix,optional"`
	Host         *hcl.Attribute `hcl:"host,optional"`
	MaxBodyBytes *hcl.Attribute `hcl:"max_body_bytes,optional"`

	JWT        []*rawJWT             `hcl:"jwt,block"`        // filter_jwt.go
	RateLimit  []*rawRateLimit       `hcl:"rate_limit,block"` // filter_ratelimit.go
	Headers    []*rawHeaders         `hcl:"headers,block"`    // filter_headers.go
	Backends   []*rawBackend         `hcl:"backend,block"`    // backends.go
	HeaderCond []*rawHeaderCondition `hcl:"header,block"`     // backends.go
	Compress   []*rawCompress        `hcl:"compress,block"`   // filters_part2.go
	Cache      []*rawCache           `hcl:"cache,block"`      // filters_part2.go
}

type rawLocalService struct {
	Name            *hcl.Attribute `hcl:"name,optional"`
	ID              *hcl.Attribute `hcl:"id,optional"`
	Address         *hcl.Attribute `hcl:"address,optional"`
	Port            *hcl.Attribute `hcl:"port,optional"`
	Tags            *hcl.Attribute `hcl:"tags,optional"`
	Meta            *hcl.Attribute `hcl:"meta,optional"`
	DeregisterDelay *hcl.Attribute `hcl:"deregister_delay,optional"`

	Check []*rawLocalCheck `hcl:"check,block"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawLocalCheck struct {
	HTTP                    *hcl.Attribute `hcl:"http,optional"`
	TCP                     *hcl.Attribute `hcl:"tcp,optional"`
	Interval                *hcl.Attribute `hcl:"interval,optional"`
	Timeout                 *hcl.Attribute `hcl:"timeout,optional"`
	DeregisterCriticalAfter *hcl.Attribute `hcl:"deregister_critical_after,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

package route

import (
	"crypto/tls"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/upstream"
)

// RouteSpec declares one route, as cmd converts it from the configuration.
// Host is lower-case without a port, "" for any host; PathPrefix is
// canonical (see CanonicalPath) without a trailing "/" unless it is "/". It
// is a plain value; Build copies what it keeps.
type RouteSpec struct {
	Name        string
	Host        string
	PathPrefix  string
	Service     string
	StripPrefix bool
	// MaxBodyBytes bounds a request body (413 beyond); 0: no limit.
	MaxBodyBytes int64
	// Filters are the route's filters in the order written (SPEC §13);
	// nil: none. A chain outlives tables: it is built when the
	// configuration is loaded, not when discovery changes.
	Filters *filter.Chain
	// Backends split the route's traffic by weight (SPEC §13); empty: all
	// of it goes to Service. Headers are conditions the request must meet
	// for the route to match (see Table.MatchRequest).
	Backends []Backend
	Headers  []HeaderCond
}

// Backend is one target of a traffic split: a service, only its instances
// carrying Tag when Tag is set, with a relative Weight (at least 1 when the
// route has several; 0 takes no traffic).
type Backend struct {
	Service string
	Tag     string
	Weight  int
}

// HeaderCond is a route condition on a request header field: present with
// one of Values (compared exactly), or present at all when Values is empty.
type HeaderCond struct {
	Name   string
	Values []string
}

// ServiceSpec tunes forwarding to one service. Zero timeouts and an empty
// Balance take the defaults (DefaultConnectTimeout, DefaultResponseTimeout,
// "round_robin"); a service routed without a spec also gets DefaultRetries.
// It is a plain value; Build copies what it keeps.
type ServiceSpec struct {
	Name            string
	Tag             string
	Balance         string // round_robin | random | weighted | least_request
	ConnectTimeout  time.Duration
	ResponseTimeout time.Duration
	Retries         int // extra attempts, each on another instance
	// Outlier is the passive-check policy; a zero ConsecutiveFailures
	// counts no failures (a refused connection still ejects) and a zero
	// BaseEjectionTime takes DefaultBaseEjectionTime.
	Outlier health.Outlier
	// MaxRequests caps the service's requests in flight; beyond it a
	// request waits in a queue of at most MaxPendingRequests for at most
	// QueueTimeout (DefaultQueueTimeout when 0), then is answered 503.
	// 0: no cap. MaxPendingRequests 0: no queue (503 at once).
	MaxRequests        int
	MaxPendingRequests int
	QueueTimeout       time.Duration
	// Protocol is what ferry speaks to the instances: "" or ProtocolHTTP1
	// (ferry's HTTP/1.1 client), ProtocolHTTP2 or ProtocolGRPC (the HTTP/2
	// client, see upstream.H2; grpc also answers gRPC requests' failures
	// as gRPC statuses).
	Protocol string
	// TLS is the TLS client configuration to the instances, built once per
	// configuration load and never modified (the Builder keeps a service's
	// connections while the pointer stays the same); nil: cleartext. An
	// empty ServerName verifies and sends as SNI each instance's address.
	TLS *tls.Config
}

// Upstream protocols (ServiceSpec.Protocol), as the configuration spells
// them.
const (
	ProtocolHTTP1 = "http1"
	ProtocolHTTP2 = "http2"
	ProtocolGRPC  = "grpc"
)

// H2 reports whether the service's instances are spoken to in HTTP/2.
func (s *ServiceSpec) H2() bool { return s.Protocol == ProtocolHTTP2 || s.Protocol == ProtocolGRPC }

// Defaults for services routed without a ServiceSpec (or with zero fields),
// the same as the configuration's.
const (
	DefaultBalance = "round_robin"
	// DefaultBaseEjectionTime is the outlier block's default.
	DefaultBaseEjectionTime = 30 * time.Second
	DefaultConnectTimeout   = 2 * time.Second
	DefaultResponseTimeout  = 30 * time.Second
	DefaultRetries          = 2
	DefaultQueueTimeout     = 5 * time.Second
)

// Table is an immutable routing snapshot: routes indexed for lookup, and per
// routed service its instances, balancer and connection pools. A request loads one
// Table and uses it for all its attempts. A Table is safe for concurrent use;
// nothing on the request path writes to it (per-instance counters live in
// health.State, outside the table).
type Table struct {
	routes   []RouteSpec
	hosts    map[string]*hostRoutes // normalised host ("" = any) → its routes
	services map[string]*Service
}

// hostRoutes are the routes of one host, keyed by canonical prefix.
type hostRoutes struct {
	prefixes map[string]*Route
	maxLen   int // the longest prefix, so that Match skips longer candidates
}

// Routes returns a copy of the route specs the table was built from, in the
// order given. Safe for concurrent use.
func (t *Table) Routes() []RouteSpec {
	return append([]RouteSpec(nil), t.routes...)
}

// Service returns the routed service of that name, or nil. Safe for
// concurrent use.
func (t *Table) Service(name string) *Service { return t.services[name] }

// Services returns the routed services sorted by name. Safe for concurrent use.
func (t *Table) Services() []*Service {
	out := make([]*Service, 0, len(t.services))
	for _, s := range t.services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Route is one route of a Table. It is immutable and safe for concurrent use.
type Route struct {
	spec    RouteSpec   // PathPrefix canonical, Host normalised
	service *Service    // the first backend's
	stats   *RouteStats // long-lived; see stats.go
	// A traffic split: the backends' services and the weighted choice
	// among them (see PickService); empty when the route has one backend.
	backends []*Service
	picker   *picker
	// next is the route tried after this one for the same host and
	// prefix when this one's header conditions do not hold.
	next *Route
}

// Spec returns the route's spec, normalised as the table uses it.
func (r *Route) Spec() *RouteSpec { return &r.spec }

// Service returns the service the route forwards to; never nil, though it
// may have no instances.
func (r *Route) Service() *Service { return r.service }

// Service is a routed service within one Table: its instances as discovery
// last published them, and how to pick and reach one. It is immutable (its
// balancer and retry budget keep their counters in atomics) and safe for
// concurrent use.
type Service struct {
	name      string
	tag       string      // a split's backend: only instances with this tag
	spec      ServiceSpec // defaults applied
	upstreams []*Upstream // in the InstanceSet's order; never modified
	Balancer  balancer
	Budget    *retryBudget // long-lived, shared with later tables
	Gate      *Gate        // long-lived while max_requests and its queue stay the same
	// H2 is the HTTP/2 client to the instances of a service whose
	// protocol is http2 or grpc (nil otherwise): long-lived like the
	// HTTP/1.1 pools, one connection pool per instance inside it.
	H2     *upstream.H2
	known  bool
	stale  bool
	Logger hclog.Logger  // With("service", name)
	stats  *ServiceStats // long-lived; see stats.go
}

// Name returns the Consul service name.
func (s *Service) Name() string { return s.name }

// Tag returns the tag a traffic split's backend selects instances by; "":
// every instance.
func (s *Service) Tag() string { return s.tag }

// Spec returns the service's spec with defaults applied.
func (s *Service) Spec() *ServiceSpec { return &s.spec }

// Upstreams returns the service's instances. The slice is shared by every
// request using the table: callers must not modify it.
func (s *Service) Upstreams() []*Upstream { return s.upstreams }

// Queued returns how many of the service's requests wait for a
// max_requests slot now.
func (s *Service) Queued() int64 { return s.Gate.Waiting() }

// Known reports whether Consul had answered for the service when the table
// was built.
func (s *Service) Known() bool { return s.known }

// Stale reports whether the instances are the last known ones kept while
// Consul queries fail.
func (s *Service) Stale() bool { return s.stale }

// Upstream is one instance of a service within a Table. It is immutable and
// safe for concurrent use; its load and health live in the long-lived
// health.State it points to, keyed by (service, Instance.Key()).
type Upstream struct {
	instance discovery.Instance
	addr     string         // host:port, computed once per table
	Health   InstanceState  // *health.State outside tests
	Pool     *upstream.Pool // idle connections to the instance; long-lived
	stats    *InstanceStats // long-lived; see stats.go
}

// InstanceState is what the proxy needs of a health.State. Balancers use it
// through this interface so that their pure logic can be tested with fakes.
type InstanceState interface {
	Acquire()
	Release()
	InFlight() int64
	Available() bool
	Report(o health.Outcome, p health.Outlier) time.Duration
}

var _ InstanceState = (*health.State)(nil)

// Instance returns the Consul instance.
func (u *Upstream) Instance() discovery.Instance { return u.instance }

// Addr returns the host:port ferry dials.
func (u *Upstream) Addr() string { return u.addr }

// eligible reports whether a balancer may pick u: it is available, and it is
// not the instance the previous attempt failed on.
func (u *Upstream) eligible(avoid *Upstream) bool {
	return u != avoid && u.Health.Available()
}

// NewUpstream returns an instance outside any table, for tests and
// benchmarks of the layers above: no pool and no stats.
func NewUpstream(inst discovery.Instance, state InstanceState) *Upstream {
	return &Upstream{instance: inst, addr: inst.HostPort(), Health: state}
}

// NewRoute returns a route outside any table to a service with no
// instances, for tests and benchmarks of the layers above.
func NewRoute(spec RouteSpec) *Route {
	return &Route{spec: spec, service: &Service{name: spec.Service}}
}

// EmptyTable returns a table with no routes (what a Handler serves before
// its first Store).
func EmptyTable() *Table {
	return &Table{hosts: map[string]*hostRoutes{}, services: map[string]*Service{}}
}

package proxy

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/health"
)

// Request-path statistics.
//
// Recording a request must stay cheap: go-metrics' labelled calls allocate a
// label slice per call and its Prometheus sink takes a sync.Map store and a
// lock per update. So the request path only adds to atomic counters that
// exist before the request starts, and cmd publishes them to go-metrics on a
// ticker and at scrape time (as counter deltas, gauges and duration samples).
//
// The counters are long-lived: the Builder keeps one RouteStats per route
// name and one ServiceStats per routed service, hands the same ones to every
// table it builds, and forgets them when the route or service goes away.
// Totals therefore only grow while a route exists, as Prometheus counters
// must; a route that is removed and comes back starts again from zero.

// Status classes: index i counts statuses (i+1)xx.
const numClasses = 5

// CodeClasses names the status classes, indexed as RouteStats.Requests takes
// them: "1xx" … "5xx". Statuses outside 100–599 count as 5xx.
var CodeClasses = [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// classOf maps a status to its class index.
func classOf(status int) int {
	switch c := status/100 - 1; {
	case c < 0:
		return 0
	case c >= numClasses:
		return numClasses - 1
	default:
		return c
	}
}

// RouteStats counts one route's finished requests by status class and keeps
// a sample of their durations. Safe for concurrent use.
type RouteStats struct {
	requests  [numClasses]atomic.Uint64
	durations SampleRing
}

// Requests returns how many requests of status class i (see CodeClasses)
// finished on the route.
func (s *RouteStats) Requests(i int) uint64 { return s.requests[i].Load() }

// Durations returns the route's duration samples.
func (s *RouteStats) Durations() *SampleRing { return &s.durations }

func (s *RouteStats) record(status int, d time.Duration) {
	s.requests[classOf(status)].Add(1)
	s.durations.add(d)
}

// SampleRingSize is how many duration samples a SampleRing keeps: at one
// drain a second, every request of a route up to this rate is sampled, and
// above it the most recent ones.
const SampleRingSize = 1024

// SampleRing is a lock-free ring of the most recent request durations. A
// writer takes a slot with one atomic add and stores into it; a reader
// drains the samples written since its cursor. A reader racing a writer may
// read a slot's previous value once — harmless for latency quantiles, and
// the price of never blocking a request. Safe for concurrent use.
type SampleRing struct {
	next  atomic.Uint64
	slots [SampleRingSize]atomic.Int64 // nanoseconds
}

func (r *SampleRing) add(d time.Duration) {
	i := r.next.Add(1) - 1
	r.slots[i%SampleRingSize].Store(int64(d))
}

// Drain calls fn with every sample recorded since cursor (only the most
// recent SampleRingSize when more were recorded) and returns the cursor to
// pass next time. Start with cursor 0. Drain with the same cursor must not
// run concurrently with itself (writers may).
func (r *SampleRing) Drain(cursor uint64, fn func(time.Duration)) uint64 {
	end := r.next.Load()
	if cursor > end { // a different ring than the cursor was for
		cursor = end
	}
	if end-cursor > SampleRingSize {
		cursor = end - SampleRingSize
	}
	for i := cursor; i < end; i++ {
		fn(time.Duration(r.slots[i%SampleRingSize].Load()))
	}
	return end
}

// ServiceStats counts one routed service's upstream attempts, retries and
// outlier ejections. Safe for concurrent use.
type ServiceStats struct {
	attempts  atomic.Uint64
	retries   atomic.Uint64
	ejections atomic.Uint64

	// The max_requests queue (see gate.go).
	queued         atomic.Uint64 // requests that waited in the queue
	queueNanos     atomic.Uint64 // their total wait
	queueTimeouts  atomic.Uint64 // of them, answered 503 after queue_timeout
	queueOverflows atomic.Uint64 // answered 503 at once: the queue was full
}

// Queued is how many requests waited for a max_requests slot, and
// QueueWait their total wait.
func (s *ServiceStats) Queued() uint64 { return s.queued.Load() }

// QueueWait is the total time requests waited in the queue.
func (s *ServiceStats) QueueWait() time.Duration { return time.Duration(s.queueNanos.Load()) }

// QueueTimeouts is how many queued requests were answered 503 after
// queue_timeout.
func (s *ServiceStats) QueueTimeouts() uint64 { return s.queueTimeouts.Load() }

// QueueOverflows is how many requests were answered 503 at once because
// the queue was full.
func (s *ServiceStats) QueueOverflows() uint64 { return s.queueOverflows.Load() }

func (s *ServiceStats) count(c *atomic.Uint64) {
	if s != nil {
		c.Add(1)
	}
}

// Attempts is how many attempts were sent to the service's instances
// (first tries and retries).
func (s *ServiceStats) Attempts() uint64 { return s.attempts.Load() }

// Retries is how many of the attempts were retries.
func (s *ServiceStats) Retries() uint64 { return s.retries.Load() }

// Ejections is how many times passive checks ejected one of the service's
// instances.
func (s *ServiceStats) Ejections() uint64 { return s.ejections.Load() }

// Ejected counts one outlier ejection. The transport calls it when a report
// to health.State ejects an instance.
func (s *ServiceStats) Ejected() {
	if s != nil {
		s.ejections.Add(1)
	}
}

// Reasons a request got no route, as HandlerStats.Unrouted takes them.
const (
	UnroutedNoRoute          = iota // 404: no route matches
	UnroutedBadRequest              // 400: the path cannot be made canonical
	UnroutedMethodNotAllowed        // 405: CONNECT
	numUnrouted
)

// UnroutedReasons names the reasons, indexed by the Unrouted* constants.
var UnroutedReasons = [numUnrouted]string{"no_route", "bad_request", "method_not_allowed"}

// HandlerStats counts what no route accounts for. Safe for concurrent use.
type HandlerStats struct {
	unrouted     [numUnrouted]atomic.Uint64
	handoffs     atomic.Uint64
	acceptErrors atomic.Uint64
}

// AcceptErrors returns how many times accepting a connection failed for
// want of file descriptors (or another temporary error) and was backed off.
func (s *HandlerStats) AcceptErrors() uint64 { return s.acceptErrors.Load() }

// Handoffs returns how many client connections the fast lane handed to the
// Handler's net/http server (see Server).
func (s *HandlerStats) Handoffs() uint64 { return s.handoffs.Load() }

// Unrouted returns how many requests were answered without a route for
// reason i (one of the Unrouted* constants).
func (s *HandlerStats) Unrouted(i int) uint64 { return s.unrouted[i].Load() }

// Stats returns the handler's own counters. Safe for concurrent use.
func (h *Handler) Stats() *HandlerStats { return &h.stats }

// unroute counts a request answered without a route.
func (s *HandlerStats) unroute(status int) {
	switch status {
	case http.StatusMethodNotAllowed:
		s.unrouted[UnroutedMethodNotAllowed].Add(1)
	case http.StatusBadRequest:
		s.unrouted[UnroutedBadRequest].Add(1)
	default:
		s.unrouted[UnroutedNoRoute].Add(1)
	}
}

// record counts a finished exchange, for both lanes. It runs on the request
// path: atomics only, no allocation, no lock.
func (x *exchange) record(start time.Time) {
	if rs := x.route.stats; rs != nil {
		rs.record(x.status, time.Since(start))
	}
	if ss := x.svc.stats; ss != nil && x.attempts > 0 {
		ss.attempts.Add(uint64(x.attempts))
		if x.attempts > 1 {
			ss.retries.Add(uint64(x.attempts - 1))
		}
	}
}

// describe fills the access-log fields the exchange knows; x may be nil (a
// request answered before routing).
func (x *exchange) describe(e *AccessEntry) {
	if x == nil {
		return
	}
	e.Route, e.Service, e.Attempts = x.route.spec.Name, x.svc.name, x.attempts
	if x.upstream != nil {
		e.Upstream = x.upstream.addr
	}
}

// Stats returns the route's counters; nil for a route not built by a Builder.
func (r *Route) Stats() *RouteStats { return r.stats }

// EachRoute calls fn with every route of the table (in no particular order).
// Safe for concurrent use.
func (t *Table) EachRoute(fn func(r *Route)) {
	for _, hr := range t.hosts {
		for _, r := range hr.prefixes {
			fn(r)
		}
	}
}

// Stats returns the service's counters; nil for a service not built by a
// Builder.
func (s *Service) Stats() *ServiceStats { return s.stats }

// InFlight is the number of the service's requests in flight (from routing
// to the end of the response), counted by its retry budget.
func (s *Service) InFlight() int64 {
	if s.budget == nil {
		return 0
	}
	return s.budget.requests.Load()
}

// State returns the instance's long-lived health state, or nil when the
// table was built with another instanceState (tests).
func (u *Upstream) State() *health.State {
	st, _ := u.state.(*health.State)
	return st
}

// statsStore is the Builder's long-lived stats, by route name and service
// name. Only the building goroutine uses it.
type statsStore struct {
	routes   map[string]*RouteStats
	services map[string]*ServiceStats
}

func (s *statsStore) route(name string) *RouteStats {
	if s.routes == nil {
		s.routes = make(map[string]*RouteStats)
	}
	rs := s.routes[name]
	if rs == nil {
		rs = new(RouteStats)
		s.routes[name] = rs
	}
	return rs
}

func (s *statsStore) service(name string) *ServiceStats {
	if s.services == nil {
		s.services = make(map[string]*ServiceStats)
	}
	ss := s.services[name]
	if ss == nil {
		ss = new(ServiceStats)
		s.services[name] = ss
	}
	return ss
}

// retain forgets the stats of routes and services that t does not have.
func (s *statsStore) retain(t *Table) {
	keep := make(map[string]bool)
	t.EachRoute(func(r *Route) { keep[r.spec.Name] = true })
	for name := range s.routes {
		if !keep[name] {
			delete(s.routes, name)
		}
	}
	for name := range s.services {
		if t.services[name] == nil {
			delete(s.services, name)
		}
	}
}

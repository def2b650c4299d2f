package route

import (
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/health"
)

// Request-path statistics.
//
// Recording a request must stay cheap: go-metrics' labelled calls allocate a
// label slice per call and its Prometheus sink takes a sync.Map store and a
// lock per update. So the request path only adds to atomic counters that
// exist before the request starts (counters and duration histograms), and cmd
// publishes them to go-metrics on a ticker and at scrape time, and exports
// the histograms at scrape time.
//
// Two hooks record: recordRequest once per routed request when it ends, and
// Service.attemptDone once per upstream attempt when it ends.
//
// The counters are long-lived: the Builder keeps one RouteStats per route
// name, one ServiceStats per routed service and one InstanceStats per
// instance, hands the same ones to every table it builds, and forgets them
// when the route, service or instance goes away.
// Totals therefore only grow while a route exists, as Prometheus counters
// must; a route that is removed and comes back starts again from zero.

// cacheLine is a CPU cache line's size (64 bytes on amd64 and on common
// arm64 cores). What every request writes (these counters, the retry
// budget, the round-robin counter) is padded to a multiple of it. The
// allocator places an object of such a size at a multiple of its size
// class, itself a multiple of 64, so no other object shares its lines.
// Otherwise a neighbour that every request only reads (a route, an
// instance's address) would leave the other core's cache at each write
// (false sharing) and cost a miss there on the next request.
// TestHotObjectsOwnTheirCacheLines keeps the sizes right.
const cacheLine = 64

// Status classes: index i counts statuses (i+1)xx.
const numClasses = 5

// CodeClasses names the status classes, indexed as RouteStats.Requests takes
// them: "1xx" … "5xx". Statuses outside 100–599 count as 5xx.
var CodeClasses = [numClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// ClassOf maps a status to its class index.
func ClassOf(status int) int {
	switch c := status/100 - 1; {
	case c < 0:
		return 0
	case c >= numClasses:
		return numClasses - 1
	default:
		return c
	}
}

// RouteStats counts one route's finished requests by status class, the
// bytes of their responses, and their durations. Safe for concurrent use.
type RouteStats struct {
	requests  [numClasses]atomic.Uint64
	bytes     atomic.Uint64
	durations Histogram
}

// Requests returns how many requests of status class i (see CodeClasses)
// finished on the route.
func (s *RouteStats) Requests(i int) uint64 { return s.requests[i].Load() }

// Bytes returns the response body bytes sent to clients on the route.
func (s *RouteStats) Bytes() uint64 { return s.bytes.Load() }

// Durations returns the histogram of the route's request durations, from a
// request's arrival to the end of its response.
func (s *RouteStats) Durations() *Histogram { return &s.durations }

// ServiceStats counts one routed service's upstream attempts, retries and
// outlier ejections, and the attempts' durations. Safe for concurrent use.
type ServiceStats struct {
	attempts  atomic.Uint64
	retries   atomic.Uint64
	ejections atomic.Uint64
	durations Histogram // attempts

	// The max_requests queue (see gate.go).
	queued         atomic.Uint64 // requests that waited in the queue
	queueNanos     atomic.Uint64 // their total wait
	queueTimeouts  atomic.Uint64 // of them, answered 503 after queue_timeout
	queueOverflows atomic.Uint64 // answered 503 at once: the queue was full
	_              [cacheLine - 200%cacheLine]byte
}

// Queued is how many requests waited for a max_requests slot.
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

// AttemptDurations returns the histogram of the service's attempt durations:
// from sending a request to an instance to its response head, or to the
// attempt's failure.
func (s *ServiceStats) AttemptDurations() *Histogram { return &s.durations }

// Attempts is how many attempts were sent to the service's instances
// (first tries and retries).
func (s *ServiceStats) Attempts() uint64 { return s.attempts.Load() }

// Retries is how many of the attempts were retries.
func (s *ServiceStats) Retries() uint64 { return s.retries.Load() }

// Ejections is how many times passive checks ejected one of the service's
// instances.
func (s *ServiceStats) Ejections() uint64 { return s.ejections.Load() }

// Ejected counts one outlier ejection. The upstream client calls it when a report
// to health.State ejects an instance.
func (s *ServiceStats) Ejected() {
	if s != nil {
		s.ejections.Add(1)
	}
}

// InstanceStats counts the traffic of one instance of a service: its
// attempts by the status class of its answer (or as failed when it gave
// none: a connect failure, reset or timeout), their durations, and the
// response bytes of the requests it answered. It lives as long as the
// instance stays in discovery's set (across tables and reloads), so its
// totals only grow. Not exported to Prometheus (an instance label would be
// unbounded): the admin API and the status page read it. Safe for
// concurrent use.
type InstanceStats struct {
	answers   [numClasses]atomic.Uint64
	failed    atomic.Uint64
	bytes     atomic.Uint64
	durations Histogram
	_         [cacheLine - 200%cacheLine]byte
}

// Answers returns how many attempts the instance answered with a status of
// class i (see CodeClasses).
func (s *InstanceStats) Answers(i int) uint64 { return s.answers[i].Load() }

// Failed returns how many attempts got no answer from the instance.
func (s *InstanceStats) Failed() uint64 { return s.failed.Load() }

// Bytes returns the response body bytes of the requests the instance
// answered.
func (s *InstanceStats) Bytes() uint64 { return s.bytes.Load() }

// Durations returns the histogram of the instance's attempt durations.
func (s *InstanceStats) Durations() *Histogram { return &s.durations }

// AttemptDone ends one attempt on up: it feeds the outcome to the
// instance's passive checks (status ≥ 500 or no answer is a failure; err
// tells a refused connection) and counts it on the instance and the
// service. status is the answer's status, 0 when there was none. Every
// upstream client calls it once per attempt, except for an attempt the
// client's departure cut short, which counts against nobody. Atomics only
// (and a log line on an ejection).
func (s *Service) AttemptDone(up *Upstream, status int, err error, start time.Time) {
	switch {
	case status >= 500:
		s.Report(up, health.Failure)
	case status > 0:
		s.Report(up, health.Success)
	default:
		s.Report(up, outcomeOf(err))
	}
	d := time.Since(start)
	if s.stats != nil {
		s.stats.durations.Observe(d)
	}
	if is := up.stats; is != nil {
		if status > 0 {
			is.answers[ClassOf(status)].Add(1)
		} else {
			is.failed.Add(1)
		}
		is.durations.Observe(d)
	}
}

// Stats returns the instance's traffic counters; nil for an instance of a
// table not built by a Builder.
func (u *Upstream) Stats() *InstanceStats { return u.stats }

// RecordRequest counts a routed request that has finished: on its route
// (class, bytes, duration), on its service (attempts, retries) and on the
// instance that answered last (up, nil when none was tried: bytes). Every
// front-end calls it once per routed request. Atomics only.
func RecordRequest(route *Route, up *Upstream, status int, bytes int64, d time.Duration, attempts int) {
	if rs := route.stats; rs != nil {
		rs.requests[ClassOf(status)].Add(1)
		rs.bytes.Add(uint64(max(bytes, 0)))
		rs.durations.Observe(d)
	}
	if ss := route.service.stats; ss != nil && attempts > 0 {
		ss.attempts.Add(uint64(attempts))
		if attempts > 1 {
			ss.retries.Add(uint64(attempts - 1))
		}
	}
	if up != nil && up.stats != nil && bytes > 0 {
		up.stats.bytes.Add(uint64(bytes))
	}
}

// Stats returns the route's counters; nil for a route not built by a Builder.
func (r *Route) Stats() *RouteStats { return r.stats }

// EachRoute calls fn with every route of the table (in no particular order).
// Safe for concurrent use.
func (t *Table) EachRoute(fn func(r *Route)) {
	for _, hr := range t.hosts {
		for _, head := range hr.prefixes {
			for r := head; r != nil; r = r.next {
				fn(r)
			}
		}
	}
}

// Stats returns the service's counters; nil for a service not built by a
// Builder.
func (s *Service) Stats() *ServiceStats { return s.stats }

// RetriesDenied is how many retries the service's retry budget refused:
// the request failed with the error of its last attempt instead.
func (s *Service) RetriesDenied() uint64 {
	if s.Budget == nil {
		return 0
	}
	return s.Budget.denied.Load()
}

// InFlight is the number of the service's requests in flight (from routing
// to the end of the response), counted by its retry budget.
func (s *Service) InFlight() int64 {
	if s.Budget == nil {
		return 0
	}
	return s.Budget.Requests.Load()
}

// State returns the instance's long-lived health state, or nil when the
// table was built with another InstanceState (tests).
func (u *Upstream) State() *health.State {
	st, _ := u.Health.(*health.State)
	return st
}

// statsStore is the Builder's long-lived stats, by route name and service
// name. Only the building goroutine uses it.
type statsStore struct {
	routes    map[string]*RouteStats
	services  map[string]*ServiceStats
	instances map[instanceKey]*InstanceStats
}

type instanceKey struct{ service, instance string }

func (s *statsStore) instance(service, key string) *InstanceStats {
	if s.instances == nil {
		s.instances = make(map[instanceKey]*InstanceStats)
	}
	k := instanceKey{service, key}
	is := s.instances[k]
	if is == nil {
		is = new(InstanceStats)
		s.instances[k] = is
	}
	return is
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
	inTable := make(map[*InstanceStats]bool)
	for _, svc := range t.services {
		for _, up := range svc.upstreams {
			inTable[up.stats] = true
		}
	}
	for k, is := range s.instances {
		if !inTable[is] {
			delete(s.instances, k)
		}
	}
}

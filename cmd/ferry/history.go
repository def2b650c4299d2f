package main

import (
	"sort"
	"sync"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
)

// Traffic history for the status page.
//
// Every historyStep the sampler reads the cumulative counters of each route
// and instance of the table in use (proxy/stats.go) and turns the growth
// since the previous step into one point: requests per second, 4xx and 5xx
// per second, p50 and p99 from the histogram's growth, bytes per second.
// Each series keeps the last historyPoints points (15 minutes) in a fixed
// ring, allocated at its first step with traffic: memory is bounded by the
// number of routes and instances routed now (about 4.5 KiB for each that
// has had traffic, 0.3 KiB for an idle one); the series of a route or
// instance that leaves the table is dropped at the next step. Nothing here
// touches the request path.

const (
	historyStep   = 5 * time.Second
	historyPoints = 180 // 15 minutes of historyStep
)

// trafficPoint is one step of one series. Rates are per second; latencies
// in milliseconds.
type trafficPoint struct {
	rate    float32
	rate4xx float32
	rate5xx float32
	p50ms   float32
	p99ms   float32
	bytesPS float32
}

// counts is a series' cumulative totals at one moment.
type counts struct {
	classes [5]uint64 // by status class; an instance's failed attempts count as 5xx
	bytes   uint64
	hist    route.HistogramSnapshot
	at      time.Time
}

func routeCounts(rs *route.RouteStats, now time.Time) counts {
	c := counts{bytes: rs.Bytes(), hist: rs.Durations().Snapshot(), at: now}
	for i := range c.classes {
		c.classes[i] = rs.Requests(i)
	}
	return c
}

func instanceCounts(is *route.InstanceStats, now time.Time) counts {
	c := counts{bytes: is.Bytes(), hist: is.Durations().Snapshot(), at: now}
	for i := range c.classes {
		c.classes[i] = is.Answers(i)
	}
	c.classes[4] += is.Failed()
	return c
}

// pointBetween is the step from prev to cur.
func pointBetween(prev, cur counts) trafficPoint {
	var p trafficPoint
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return p
	}
	var total uint64
	for i := range cur.classes {
		total += sub(cur.classes[i], prev.classes[i])
	}
	p.rate = float32(float64(total) / secs)
	p.rate4xx = float32(float64(sub(cur.classes[3], prev.classes[3])) / secs)
	p.rate5xx = float32(float64(sub(cur.classes[4], prev.classes[4])) / secs)
	p.bytesPS = float32(float64(sub(cur.bytes, prev.bytes)) / secs)
	d := cur.hist.Sub(prev.hist)
	if d.Count() > 0 {
		p.p50ms = float32(d.Quantile(0.5).Seconds() * 1000)
		p.p99ms = float32(d.Quantile(0.99).Seconds() * 1000)
	}
	return p
}

// sub is a counter's growth; a counter that went down was replaced (a route
// removed and added again between two steps) and counts from zero.
func sub(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// series is one route's or instance's history: a ring of points, one per
// step, the newest ending at lastEnd. Points are not timestamped one by one:
// the sampler's steps are historyStep apart (a late tick makes its point
// span a little more time; its rates stay exact).
type series struct {
	last    counts
	lastEnd time.Time
	ring    *[historyPoints]trafficPoint // nil until the first point with traffic
	n       int                          // points so far (the ring holds min(n, historyPoints))
	seen    uint64
}

func (s *series) add(p trafficPoint, end time.Time) {
	s.lastEnd = end
	if s.ring == nil {
		if p == (trafficPoint{}) {
			s.n++
			return
		}
		s.ring = new([historyPoints]trafficPoint)
	}
	s.ring[s.n%historyPoints] = p
	s.n++
}

// ordered returns the points oldest first; none for a series that never had
// traffic.
func (s *series) ordered() []trafficPoint {
	if s.ring == nil {
		return nil
	}
	if s.n <= historyPoints {
		return append([]trafficPoint(nil), s.ring[:s.n]...)
	}
	i := s.n % historyPoints
	return append(append([]trafficPoint(nil), s.ring[i:]...), s.ring[:i]...)
}

// trafficKey names a series: a route, or an instance of a service.
type trafficKey struct {
	kind    byte // 'r' route, 'i' instance
	service string
	name    string // route name, or instance ID
	node    string // the instance's node: IDs are unique per node only
}

// history samples the table's counters and keeps every series. Safe for
// concurrent use.
type history struct {
	table func() *route.Table

	mu     sync.Mutex
	pass   uint64
	series map[trafficKey]*series
}

func newHistory(table func() *route.Table) *history {
	return &history{table: table, series: make(map[trafficKey]*series)}
}

// sample takes one step at now.
func (h *history) sample(now time.Time) {
	t := h.table()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pass++
	t.EachRoute(func(r *route.Route) {
		if rs := r.Stats(); rs != nil {
			spec := r.Spec()
			h.step(trafficKey{kind: 'r', service: spec.Service, name: spec.Name}, routeCounts(rs, now))
		}
	})
	for _, svc := range t.Services() {
		for _, up := range svc.Upstreams() {
			if is := up.Stats(); is != nil {
				inst := up.Instance()
				h.step(trafficKey{kind: 'i', service: svc.Name(), name: inst.ID, node: inst.Node}, instanceCounts(is, now))
			}
		}
	}
	for k, s := range h.series {
		if s.seen != h.pass {
			delete(h.series, k)
		}
	}
}

func (h *history) step(k trafficKey, c counts) {
	s := h.series[k]
	if s == nil {
		h.series[k] = &series{last: c, seen: h.pass}
		return
	}
	s.add(pointBetween(s.last, c), c.at)
	s.last, s.seen = c, h.pass
}

// trafficJSON is one series in GET /v1/stats: the latest step's values and
// the history, oldest first, as parallel arrays (t: unix seconds at the end
// of each step).
type trafficJSON struct {
	Service     string      `json:"service"`
	Name        string      `json:"name"`
	Node        string      `json:"node,omitempty"` // instances only
	Requests    uint64      `json:"requests_total"`
	Bytes       uint64      `json:"bytes_total"`
	Rate        float32     `json:"rate"`
	Rate4xx     float32     `json:"rate_4xx"`
	Rate5xx     float32     `json:"rate_5xx"`
	P50ms       float32     `json:"p50_ms"`
	P99ms       float32     `json:"p99_ms"`
	BytesPerSec float32     `json:"bytes_per_second"`
	History     historyJSON `json:"history"`
}

type historyJSON struct {
	T       []int64   `json:"t"`
	Rate    []float32 `json:"rate"`
	Rate4xx []float32 `json:"rate_4xx"`
	Rate5xx []float32 `json:"rate_5xx"`
	P50ms   []float32 `json:"p50_ms"`
	P99ms   []float32 `json:"p99_ms"`
	Bytes   []float32 `json:"bytes_per_second"`
}

// snapshot returns the series of routes and instances, of one service when
// service is not "".
func (h *history) snapshot(service string) (routes []trafficJSON, instances []trafficJSON) {
	h.mu.Lock()
	defer h.mu.Unlock()
	routes, instances = []trafficJSON{}, []trafficJSON{}
	for k, s := range h.series {
		if service != "" && k.service != service {
			continue
		}
		j := trafficJSON{Service: k.service, Name: k.name, Node: k.node, Bytes: s.last.bytes}
		for _, c := range s.last.classes {
			j.Requests += c
		}
		pts := s.ordered()
		hj := historyJSON{
			T: make([]int64, len(pts)), Rate: make([]float32, len(pts)), Rate4xx: make([]float32, len(pts)),
			Rate5xx: make([]float32, len(pts)), P50ms: make([]float32, len(pts)), P99ms: make([]float32, len(pts)),
			Bytes: make([]float32, len(pts)),
		}
		for i, p := range pts {
			end := s.lastEnd.Add(-time.Duration(len(pts)-1-i) * historyStep)
			hj.T[i], hj.Rate[i], hj.Rate4xx[i], hj.Rate5xx[i] = end.Unix(), p.rate, p.rate4xx, p.rate5xx
			hj.P50ms[i], hj.P99ms[i], hj.Bytes[i] = p.p50ms, p.p99ms, p.bytesPS
		}
		j.History = hj
		if n := len(pts); n > 0 {
			p := pts[n-1]
			j.Rate, j.Rate4xx, j.Rate5xx, j.P50ms, j.P99ms, j.BytesPerSec = p.rate, p.rate4xx, p.rate5xx, p.p50ms, p.p99ms, p.bytesPS
		}
		if k.kind == 'r' {
			routes = append(routes, j)
		} else {
			instances = append(instances, j)
		}
	}
	sortTraffic(routes)
	sortTraffic(instances)
	return routes, instances
}

func sortTraffic(s []trafficJSON) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Service != s[j].Service {
			return s[i].Service < s[j].Service
		}
		if s[i].Name != s[j].Name {
			return s[i].Name < s[j].Name
		}
		return s[i].Node < s[j].Node
	})
}

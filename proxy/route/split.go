package route

import (
	"slices"
	"sync/atomic"

	"github.com/ferry-proxy/ferry/discovery"
)

// Traffic splitting and header conditions (SPEC §13): a route may send its
// traffic to several backends by weight (a canary: 90 to tag v1, 10 to tag
// v2), and may match only requests carrying a header field (a canary for
// those who ask: X-Canary: always). Routes with header conditions win over
// a route without at the same host and prefix, in the order written.

// Headers gives a request's header values by name (case-insensitively).
type Headers interface {
	HeaderValues(name string) []string
}

// PickService returns the service this request goes to: the route's one
// service, or one of its split's backends in the smooth weighted order
// (picker.go). A backend none of whose instances is available is skipped
// and its share goes to the others — a canary with no healthy instance
// sends its traffic back to the stable version; when no backend has one,
// the first is returned (and answers 503 as any empty service does).
func (r *Route) PickService() *Service {
	if len(r.backends) == 0 {
		return r.service
	}
	if i := r.picker.Pick(r.backendAvailable); i >= 0 {
		return r.backends[i]
	}
	return r.service
}

func (r *Route) backendAvailable(i int) bool {
	for _, u := range r.backends[i].upstreams {
		if u.Health.Available() {
			return true
		}
	}
	return false
}

// matches reports whether the request meets every header condition of r.
func (r *Route) matches(h Headers) bool {
	if len(r.spec.Headers) == 0 {
		return true
	}
	if h == nil {
		return false
	}
	for _, c := range r.spec.Headers {
		vals := h.HeaderValues(c.Name)
		if len(vals) == 0 {
			return false
		}
		if len(c.Values) > 0 && !slices.ContainsFunc(vals, func(v string) bool { return slices.Contains(c.Values, v) }) {
			return false
		}
	}
	return true
}

// first returns the first route of r's chain whose conditions hold.
func (r *Route) first(h Headers) *Route {
	for ; r != nil; r = r.next {
		if r.matches(h) {
			return r
		}
	}
	return nil
}

// fits reports whether a route may join the chain at head: any route with
// header conditions may; one without only when the chain has none without
// (two such routes would claim the same requests).
func fits(head *Route, conditioned bool) bool {
	for r := head; r != nil && !conditioned; r = r.next {
		if len(r.spec.Headers) == 0 {
			return false
		}
	}
	return true
}

// insert adds r to the chain at head (see fits): conditioned routes before
// the one without, in the order written.
func insert(head **Route, r *Route) {
	p := head
	for *p != nil && len((*p).spec.Headers) > 0 {
		p = &(*p).next
	}
	if len(r.spec.Headers) == 0 {
		r.next = nil
		*p = r
		return
	}
	r.next = *p
	*p = r
}

// subset returns the part of full whose instances carry tag: the same
// service (its gate, retry budget, counters and connection pools), with its
// own instance list and balancer.
func (b *Builder) subset(full *Service, tag string) *Service {
	s := *full
	s.tag = tag
	s.upstreams = nil
	for _, u := range full.upstreams {
		if hasTag(u.instance, tag) {
			s.upstreams = append(s.upstreams, u)
		}
	}
	p := b.Pools[full.name]
	next := p.tagNext[tag]
	if next == nil {
		if p.tagNext == nil {
			p.tagNext = make(map[string]*atomic.Uint64)
		}
		next = newRoundRobinCounter()
		p.tagNext[tag] = next
	}
	s.Balancer, _ = NewBalancer(s.spec.Balance, s.upstreams, next)
	return &s
}

func hasTag(inst discovery.Instance, tag string) bool {
	return slices.Contains(inst.Tags, tag) // Consul's tags are case-sensitive
}

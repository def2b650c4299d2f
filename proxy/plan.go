package proxy

import (
	"net/http"
	"time"
)

// plan is the routing decision for a parsed request, made once for both
// front-ends: where the request goes, or the answer it gets instead.
type plan struct {
	route *Route
	first *Upstream // the balancer's pick
	path  string    // canonical
	// An answer instead of forwarding: code 0 forwards.
	code       int
	msg        string
	retryAfter bool // 503s say when to come back
	closing    bool // the client's body is left unread: the connection ends
	// gate holds a max_requests slot of the service while the request is
	// forwarded: the front-end calls done when it ends.
	gate *gate
}

// done gives back what the plan holds.
func (p *plan) done() {
	p.gate.leave()
	p.gate = nil
}

// planRequest routes a request on t by its authority and escaped path and
// applies the route's and service's limits: beyond max_requests the request
// waits in the service's queue (see gate.go; clientGone, when not nil, ends
// the wait). It allocates only for an answer that echoes the path.
func planRequest(t *Table, authority, escapedPath string, contentLength int64, clientGone <-chan struct{}) plan {
	canonical, err := CanonicalPath(escapedPath)
	if err != nil {
		return plan{path: escapedPath, code: http.StatusBadRequest, msg: "ferry: " + err.Error()}
	}
	route := t.Match(authority, canonical)
	if route == nil {
		return plan{path: canonical, code: http.StatusNotFound, msg: "ferry: no route for " + canonical}
	}
	p := plan{route: route, path: canonical}
	svc := route.service
	if route.spec.MaxBodyBytes > 0 && contentLength > route.spec.MaxBodyBytes {
		p.code, p.msg, p.closing = http.StatusRequestEntityTooLarge, msgBodyTooLarge, true
		return p
	}
	switch svc.gate.enter(clientGone) {
	case gateFull:
		p.code, p.msg, p.retryAfter = http.StatusServiceUnavailable, "ferry: service "+quote(svc.name)+" is at its max_requests and its queue is full", true
		return p
	case gateTimedOut:
		p.code, p.msg, p.retryAfter = http.StatusServiceUnavailable, "ferry: service "+quote(svc.name)+" is at its max_requests (queue_timeout passed)", true
		return p
	case gateGone:
		p.code = statusClientClosed // nobody to answer
		return p
	}
	p.gate = svc.gate
	if p.first = svc.balancer.pick(svc.upstreams, nil); p.first == nil {
		p.done()
		p.code, p.msg, p.retryAfter = http.StatusServiceUnavailable, "ferry: no healthy instance of service "+quote(svc.name), true
	}
	return p
}

// recordAnswered counts a request answered without forwarding.
func (h *Handler) recordAnswered(p *plan, status int, bytes int64, start time.Time) {
	if p.route == nil {
		h.stats.unroute(status)
		return
	}
	recordRequest(p.route, nil, status, bytes, time.Since(start), 0)
}

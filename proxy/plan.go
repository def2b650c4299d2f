package proxy

import (
	"net/http"

	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// plan is the routing decision for a parsed request, made once for both
// front-ends: where the request goes, or the answer it gets instead.
type plan struct {
	route *route.Route
	first *route.Upstream // the balancer's pick
	path  string          // canonical
	// An answer instead of forwarding: code 0 forwards.
	code       int
	msg        string
	retryAfter bool // 503s say when to come back
	closing    bool // the client's body is left unread: the connection ends
	// gate holds a max_requests slot of the service while the request is
	// forwarded: the front-end calls done when it ends.
	gate *route.Gate
}

// done gives back what the plan holds.
func (p *plan) done() {
	p.gate.Leave()
	p.gate = nil
}

// planRequest routes a request on t by its authority and escaped path and
// applies the route's and service's limits: beyond max_requests the request
// waits in the service's queue (see gate.go; clientGone, when not nil, ends
// the wait). It allocates only for an answer that echoes the path.
func planRequest(t *route.Table, authority, escapedPath string, contentLength int64, clientGone <-chan struct{}) plan {
	canonical, err := wire.CanonicalPath(escapedPath)
	if err != nil {
		return plan{path: escapedPath, code: http.StatusBadRequest, msg: "ferry: " + err.Error()}
	}
	rt := t.Match(authority, canonical)
	if rt == nil {
		return plan{path: canonical, code: http.StatusNotFound, msg: "ferry: no route for " + canonical}
	}
	p := plan{route: rt, path: canonical}
	svc := rt.Service()
	if rt.Spec().MaxBodyBytes > 0 && contentLength > rt.Spec().MaxBodyBytes {
		p.code, p.msg, p.closing = http.StatusRequestEntityTooLarge, msgBodyTooLarge, true
		return p
	}
	switch svc.Gate.Enter(clientGone) {
	case route.GateFull:
		p.code, p.msg, p.retryAfter = http.StatusServiceUnavailable, "ferry: service "+quote(svc.Name())+" is at its max_requests and its queue is full", true
		return p
	case route.GateTimedOut:
		p.code, p.msg, p.retryAfter = http.StatusServiceUnavailable, "ferry: service "+quote(svc.Name())+" is at its max_requests (queue_timeout passed)", true
		return p
	case route.GateGone:
		p.code = statusClientClosed // nobody to answer
		return p
	}
	p.gate = svc.Gate
	if p.first = svc.Balancer.Pick(svc.Upstreams(), nil); p.first == nil {
		p.done()
		p.code, p.msg, p.retryAfter = http.StatusServiceUnavailable, "ferry: no healthy instance of service "+quote(svc.Name()), true
	}
	return p
}

// Answers for the per-route and per-service limits.
const (
	msgBodyTooLarge = "ferry: request body too large"
)

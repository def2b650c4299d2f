package core

import (
	"context"
	"net/http"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// Plan is the routing decision for a parsed request, made once for both
// front-ends: where the request goes, or the answer it gets instead.
type Plan struct {
	Route   *route.Route
	Service *route.Service  // the route's service, or its split's pick
	First   *route.Upstream // the balancer's pick
	Path    string          // canonical
	// An answer instead of forwarding: code 0 forwards.
	Code       int
	Msg        string
	RetryAfter bool // 503s say when to come back
	Closing    bool // the client's body is left unread: the connection ends
	// Answer is a request filter's answer (401, 429, a cached response):
	// Code is its status, and the front-end writes it instead of Msg.
	Answer *filter.Answer
	// Filters is the request's view for the route's filters, for the
	// exchange to carry to the response side (nil: the route has none).
	Filters *FilterRequest
	// gate holds a max_requests slot of the service while the request is
	// forwarded: the front-end calls done when it ends.
	gate *route.Gate
}

// Finish tells the route's filters that the request ended, however it
// ended (filter/extra.go, rule 4); the front-end calls it once, after the
// answer went out or the exchange failed.
func (p *Plan) Finish() {
	if p.Filters != nil {
		p.Route.Spec().Filters.Finish(p.Filters)
	}
}

// Done gives back what the plan holds.
func (p *Plan) Done() {
	p.gate.Leave()
	p.gate = nil
}

// PlanRequest routes a request on t by its authority and escaped path and
// applies the route's and service's limits: beyond max_requests the request
// waits in the service's queue (see gate.go; clientGone, when not nil, ends
// the wait). Between the two, the route's request filters run on req (reset
// by the front-end for this request; ctx ends when the client leaves), so
// that a request a filter refuses holds no max_requests slot. It allocates
// only for an answer that echoes the path (and whatever filters allocate).
func PlanRequest(t *route.Table, authority, escapedPath string, contentLength int64, clientGone <-chan struct{}, req *FilterRequest, ctx context.Context) Plan {
	canonical, err := wire.CanonicalPath(escapedPath)
	if err != nil {
		return Plan{Path: escapedPath, Code: http.StatusBadRequest, Msg: "ferry: " + err.Error()}
	}
	var hdr route.Headers
	if req != nil {
		hdr = req // read only for routes with header conditions
	}
	rt := t.MatchRequest(authority, canonical, hdr)
	if rt == nil {
		return Plan{Path: canonical, Code: http.StatusNotFound, Msg: "ferry: no route for " + canonical}
	}
	svc := rt.PickService()
	p := Plan{Route: rt, Service: svc, Path: canonical}
	if rt.Spec().MaxBodyBytes > 0 && contentLength > rt.Spec().MaxBodyBytes {
		p.Code, p.Msg, p.Closing = http.StatusRequestEntityTooLarge, msgBodyTooLarge, true
		return p
	}
	if chain := rt.Spec().Filters; !chain.Empty() {
		req.path, req.route = canonical, rt.Spec().Name
		p.Filters = req
		if a := chain.Request(ctx, req); a != nil {
			p.Code, p.Answer = a.Status, a
			p.Closing = contentLength != 0 // the body is left unread
			return p
		}
	}
	switch svc.Gate.Enter(clientGone) {
	case route.GateFull:
		p.Code, p.Msg, p.RetryAfter = http.StatusServiceUnavailable, "ferry: service "+quote(svc.Name())+" is at its max_requests and its queue is full", true
		return p
	case route.GateTimedOut:
		p.Code, p.Msg, p.RetryAfter = http.StatusServiceUnavailable, "ferry: service "+quote(svc.Name())+" is at its max_requests (queue_timeout passed)", true
		return p
	case route.GateGone:
		p.Code = StatusClientClosed // nobody to answer
		return p
	}
	p.gate = svc.Gate
	if p.First = svc.Balancer.Pick(svc.Upstreams(), nil); p.First == nil {
		p.Done()
		p.Code, p.Msg, p.RetryAfter = http.StatusServiceUnavailable, "ferry: no healthy instance of service "+quote(svc.Name()), true
	}
	return p
}

// Answers for the per-route and per-service limits.
const (
	msgBodyTooLarge = "ferry: request body too large"
)

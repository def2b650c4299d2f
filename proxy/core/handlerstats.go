package core

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
)

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
	acceptErrors atomic.Uint64
	unrouted     [numUnrouted]atomic.Uint64
	handoffs     atomic.Uint64
	parked       atomic.Int64
}

// Parked adds d to the client connections parked now (idle, with no
// goroutine: see proxy/park.go).
func (s *HandlerStats) Parked(d int) { s.parked.Add(int64(d)) }

// ParkedConns returns how many client connections are parked now.
func (s *HandlerStats) ParkedConns() int64 { return s.parked.Load() }

// HandedOff counts a connection the fast lane handed to net/http.
func (s *HandlerStats) HandedOff() { s.handoffs.Add(1) }

// AcceptFailed counts a failed accept.
func (s *HandlerStats) AcceptFailed() { s.acceptErrors.Add(1) }

// AcceptErrors returns how many times accepting a connection failed for
// want of file descriptors (or another temporary error) and was backed off.
func (s *HandlerStats) AcceptErrors() uint64 { return s.acceptErrors.Load() }

// Unroute counts a request answered without a route.
func (s *HandlerStats) Unroute(status int) {
	switch status {
	case http.StatusMethodNotAllowed:
		s.unrouted[UnroutedMethodNotAllowed].Add(1)
	case http.StatusBadRequest:
		s.unrouted[UnroutedBadRequest].Add(1)
	default:
		s.unrouted[UnroutedNoRoute].Add(1)
	}
}

// Record counts a finished exchange, for both front-ends. Atomics only.
func (x *Exchange) Record(start time.Time) {
	route.RecordRequest(x.Route, x.upstream, x.Status, x.BytesSent, time.Since(start), x.Attempts)
}

// Describe fills the access-log fields the exchange knows; x may be nil (a
// request answered before routing).
func (x *Exchange) Describe(e *accesslog.Entry) {
	if x == nil {
		return
	}
	e.Route, e.Service, e.Attempts = x.Route.Spec().Name, x.Service.Name(), x.Attempts
	if x.upstream != nil {
		e.Upstream = x.upstream.Addr()
	}
}

// Handoffs returns how many client connections the fast lane handed to the
// Handler's net/http server (see Server).
func (s *HandlerStats) Handoffs() uint64 { return s.handoffs.Load() }

// Unrouted returns how many requests were answered without a route for
// reason i (one of the Unrouted* constants).
func (s *HandlerStats) Unrouted(i int) uint64 { return s.unrouted[i].Load() }

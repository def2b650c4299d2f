package core

import (
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/upstream"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// The forwarding core (SPEC §11). A front-end owns the client connection and
// parses the request; everything after that is here and written once:
//
//	front-end (fast lane | net/http) → exchange.forward
//	  → attempt loop under one policy (policy.go)
//	  → ferry's HTTP/1.1 upstream client: pools, quiet check, head and body
//	    exchange (client.go)
//	  → response relay (relay.go) → the front-end's Downstream writes it
//
// A front-end plugs in through Downstream: how the request body is read from
// the client, whether the client is still there, and how the response (or
// ferry's own error answer) is written to it.

// Downstream is the client side of an exchange, implemented by each
// front-end. Only the exchange's goroutine calls it (and, for a tunnel, the
// goroutines the tunnel owns).
type Downstream interface {
	// ReadBody reads request body bytes (unframed) that the head did not
	// bring; io.EOF at the end of the body.
	ReadBody(p []byte) (int, error)
	// RequestTrailers appends the request's trailer fields ("Name: value\r\n"
	// lines), known once ReadBody returned io.EOF.
	RequestTrailers(b []byte) []byte
	// Gone reports, without blocking, whether the client has left.
	Gone() bool
	// Informational sends the 1xx head in x.resp.
	Informational(x *Exchange) error
	// Head sends the final head in x.resp; the body follows through Data.
	Head(x *Exchange) error
	// Data sends body bytes (unframed).
	Data(p []byte) error
	// Trailer sends one response trailer field ("Name: value", no CRLF).
	Trailer(line []byte) error
	// End terminates the body and sends what is buffered.
	End() error
	// Flush sends what is buffered (before a read that may block).
	Flush() error
	// Abort drops a response head not sent yet and reports true, or
	// reports false when response bytes already reached the client.
	Abort() bool
	// Answer sends ferry's own error answer; closing ends the connection.
	Answer(x *Exchange, code int, msg string, closing bool) error
	// Reply sends a route filter's answer instead of the upstream's
	// response (a cached response standing in for it), with the same
	// rules as a request filter's answer; closing ends the connection.
	Reply(x *Exchange, a *filter.Answer, closing bool) error
	// Tunnel takes over after a 101 answer to an upgrade: it relays the
	// head in x.resp and then bytes both ways between the client and x.uc
	// until either side ends.
	Tunnel(x *Exchange) error
}

// Exchange is one request on its way to an upstream and back. It is pooled
// with its buffers; only the goroutine serving the request uses it.
type Exchange struct {
	d Downstream
	// Out and IOV are scratch buffers a front-end may write the response
	// through (the fast lane does), pooled with the exchange so that an
	// idle client connection holds none.
	Out     []byte
	IOV     net.Buffers
	Start   time.Time
	Route   *route.Route
	Service *route.Service
	Path    string // canonical

	Method     string
	ClientStop bool // the client asked to close its connection
	Upgrade    bool // the request asks for a (WebSocket) upgrade
	// GRPC: a gRPC request to a grpc service; ferry's own answers to it
	// are gRPC statuses (grpc.go).
	GRPC bool

	BodyHead   []byte // the part of the request body read with the head
	BodyLeft   int64  // body bytes still to read from the client; -1: until EOF
	BodyChunk  bool   // the body goes upstream chunked (its length is unknown)
	bodyRead   bool   // a body byte beyond bodyHead was consumed: no replay
	BodyUnread bool   // the client's body was not read to its end
	relayed    bool   // a 1xx head reached the client: no retry

	Req []byte      // the outbound head and bodyHead
	h2  *h2Exchange // the HTTP/2 client's state (client_h2.go); nil for HTTP/1.1

	upstream  *route.Upstream // the last attempt's
	Conn      *upstream.Conn  // the connection the response comes on
	leased    *route.Upstream // holds the instance's in-flight count
	Attempts  int
	Retries   int
	Status    int
	BytesSent int64

	// Route filters (filters.go): the request's view when the route has
	// filters (nil otherwise), the response header edits, the body filters'
	// writer, and whether the body's length changes on the way.
	Filters       *FilterRequest
	RespEdits     HeaderEdits
	body          filter.BodyWriter
	LengthChanged bool
	headPending   bool // the head waits for the body filters' first output
	// Truncated: the upstream failed after the response started; the
	// front-end must not end the body as if it were complete.
	Truncated bool
	In        []byte // upstream bytes: in[inR:inW] unread; small, or big while moving a large body
	InR, InW  int
	small     []byte           // the exchange's own input buffer
	big       *[bigInSize]byte // borrowed from bigIns; nil when in is small
	hex       [20]byte         // a chunk-size line

	// The upstream's response head. Last, as in the fast lane's connection
	// (fastConn.head): the fields above share a few cache lines.
	Resp wire.ResponseHead
}

const (
	// smallInSize holds a response head and a small body: what an
	// exchange keeps while it waits (a long poll, an event stream).
	smallInSize = 8 << 10
	// bigInSize is borrowed to move a large body: a loopback read then
	// takes 64 KiB at once (a 64 KiB response costs two reads and two
	// writes either way).
	bigInSize       = 64 << 10
	exchangeOutSize = 8 << 10 // a response head and a small body; req grows beyond
)

var bigIns = sync.Pool{New: func() any { return new([bigInSize]byte) }}

// Exchanges recycles exchanges with their buffers.
var Exchanges = sync.Pool{New: func() any { return NewExchange() }}

func NewExchange() *Exchange {
	x := &Exchange{
		Req:   make([]byte, 0, exchangeOutSize),
		small: make([]byte, smallInSize),
	}
	x.Out = make([]byte, 0, exchangeOutSize)
	x.IOV = make(net.Buffers, 0, 2)
	x.In = x.small
	return x
}

// grow moves the unread input to a borrowed 64 KiB buffer, once per
// exchange: for a head larger than the small buffer, a large body, or a
// streamed request body.
func (x *Exchange) grow() {
	if x.big != nil {
		return
	}
	x.big = bigIns.Get().(*[bigInSize]byte)
	x.InW = copy(x.big[:], x.In[x.InR:x.InW])
	x.InR = 0
	x.In = x.big[:]
}

// shrink returns the borrowed buffer; the exchange must hold no unread
// input it still needs.
func (x *Exchange) shrink() {
	if x.big != nil {
		bigIns.Put(x.big)
		x.big = nil
	}
	x.In, x.InR, x.InW = x.small, 0, 0
}

// Reset prepares a pooled exchange for a request routed to route.
func (x *Exchange) Reset(d Downstream, start time.Time, method string, route *route.Route, svc *route.Service, path string) {
	x.d, x.Start, x.Method, x.Route, x.Service, x.Path = d, start, method, route, svc, path
	x.ClientStop, x.Upgrade, x.GRPC, x.h2 = false, false, false, nil
	x.BodyHead, x.BodyLeft, x.BodyChunk, x.bodyRead, x.BodyUnread, x.relayed = nil, 0, false, false, false, false
	x.upstream, x.Conn, x.leased = nil, nil, nil
	x.Attempts, x.Retries, x.Status, x.BytesSent = 0, 0, 0, 0
	x.Filters, x.body, x.LengthChanged, x.headPending, x.Truncated = nil, nil, false, false, false
	x.RespEdits.Reset()
	x.shrink()
	x.Out = x.Out[:0]
}

// Release returns what the exchange still holds (an exchange that ended in
// an error may hold a connection or a lease).
func (x *Exchange) Release() {
	if x.h2 != nil {
		x.h2.finish()
		x.h2 = nil
	}
	if x.Conn != nil {
		x.Conn.Conn.Close()
		x.Conn = nil
	}
	x.unlease()
	x.shrink()
	x.abortBody()
	x.d, x.Route, x.Service, x.upstream, x.BodyHead, x.Filters = nil, nil, nil, nil, nil, nil
}

func (x *Exchange) unlease() {
	if x.leased != nil {
		x.leased.Health.Release()
		x.leased = nil
	}
}

// Errors of the upstream exchange.
var (
	errResponseTooLarge = errors.New("upstream response head too large")
	errUnexpected101    = errors.New("upstream switched protocols unasked")
	errTooMany1xx       = errors.New("too many 1xx responses from upstream")
	// errClientGone ends an exchange whose client closed its connection:
	// nobody to answer (logged 499), no fault of the upstream's.
	errClientGone = errors.New("client went away")
)

// ClientError marks a failure of the client's side while forwarding.
type ClientError struct{ Err error }

func (e *ClientError) Error() string { return "client: " + e.Err.Error() }
func (e *ClientError) Unwrap() error { return e.Err }

// Forward sends the request to up and, where the attempt policy allows, to
// other instances, then relays the response. It reports whether the client
// connection may serve another request.
func (x *Exchange) Forward(up *route.Upstream) bool {
	svc := x.Service
	x.GRPC = svc.Spec().Protocol == route.ProtocolGRPC && grpcRequest(x.Req)
	for {
		x.Attempts++
		x.upstream = up
		var err error
		if svc.H2 != nil {
			err = x.attemptH2(up) // client_h2.go
		} else {
			err = x.attempt(up)
		}
		if err == nil {
			return x.relay()
		}
		if ce, ok := errors.AsType[*ClientBodyError](err); ok {
			return x.clientBodyFailed(ce)
		}
		if errors.Is(err, errClientGone) {
			x.unlease()
			x.Status = StatusClientClosed
			return false
		}
		if decide(x.facts(err)) != retryElsewhere || x.Attempts > svc.Spec().Retries {
			return x.upstreamFailed(err)
		}
		next := svc.Balancer.Pick(svc.Upstreams(), up)
		if next == nil || next == up || !svc.Budget.TryRetry() {
			return x.upstreamFailed(err)
		}
		x.Retries++
		up = next
	}
}

// facts gathers what the attempt policy decides on after err.
func (x *Exchange) facts(err error) attemptFacts {
	_, dial := errors.AsType[*upstream.DialError](err)
	_, stale := errors.AsType[*staleConnError](err)
	return attemptFacts{
		connectFailed:   dial,
		staleReuse:      stale,
		timedOut:        route.IsTimeout(err),
		idempotent:      idempotentMethod(x.Method),
		replayable:      !x.bodyRead && x.BodyLeft == 0 && !x.Upgrade,
		responseStarted: x.relayed,
	}
}

// upstreamFailed answers a request whose last attempt failed: 504 for a
// timeout, else 502.
func (x *Exchange) upstreamFailed(err error) bool {
	x.unlease()
	log := x.Service.Logger.With("route", x.Route.Spec().Name, "address", x.upstream.Addr(),
		"instance_id", x.upstream.Instance().ID, "attempts", x.Attempts, "error", err)
	code, msg := http.StatusBadGateway, "ferry: upstream of service "+quote(x.Service.Name())+" failed"
	if route.IsTimeout(err) {
		log.Warn("upstream timed out")
		code, msg = http.StatusGatewayTimeout, "ferry: upstream of service "+quote(x.Service.Name())+" timed out"
	} else {
		log.Warn("upstream failed")
	}
	// With client body bytes still unread the connection's framing is lost:
	// answer and close.
	return x.answer(code, msg, x.BodyLeft != 0 || x.BodyUnread)
}

// clientBodyFailed answers a request whose body could not be read from the
// client: 413 beyond the route's max_body_bytes, 408 after a pause longer
// than read_timeout, else 400; the connection closes, its framing being
// lost.
func (x *Exchange) clientBodyFailed(ce *ClientBodyError) bool {
	x.unlease()
	x.Service.Logger.Debug("client request body failed", "route", x.Route.Spec().Name, "error", ce)
	code, msg := http.StatusBadRequest, "ferry: bad request body"
	if _, ok := errors.AsType[*http.MaxBytesError](ce); ok {
		code, msg = http.StatusRequestEntityTooLarge, msgBodyTooLarge
	} else if route.IsTimeout(ce.Err) {
		code, msg = http.StatusRequestTimeout, "ferry: timed out reading the request body"
	}
	x.answer(code, msg, true)
	return false
}

// answer sends ferry's own error answer (RFC 9110: no body to a HEAD) and
// reports whether the client connection may go on.
func (x *Exchange) answer(code int, msg string, closing bool) bool {
	x.Status = code
	if x.Method != http.MethodHead {
		x.BytesSent = int64(len(msg) + 1)
	}
	closing = closing || x.ClientStop
	if x.GRPC {
		return x.answerGRPC(code, msg, closing) // grpc.go
	}
	if a := x.replace(errorResponse(code)); a != nil {
		// A route filter stands in for ferry's error (a stale cached
		// response for an unreachable upstream: stale-if-error).
		return x.reply(a, closing)
	}
	if x.d.Answer(x, code, msg, closing) != nil {
		return false
	}
	return !closing
}

// reply sends a filter's answer instead of the upstream's response or
// ferry's error, and reports whether the client connection may go on.
func (x *Exchange) reply(a *filter.Answer, closing bool) bool {
	x.Status = a.Status
	if x.Method != http.MethodHead {
		x.BytesSent = int64(len(a.Body))
	}
	closing = closing || x.ClientStop || x.BodyUnread
	if x.d.Reply(x, a, closing) != nil {
		return false
	}
	return !closing
}

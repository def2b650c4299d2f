package core

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// The HTTP/2 upstream client: one attempt of an exchange with an instance
// of an http2 or grpc service, up to the response head (SPEC §11, §12). It
// replaces only the "send the request, read the response head" step of
// ferry's HTTP/1.1 client (client.go): the attempt loop and its policy
// (core.go, policy.go) and the relay through the Downstream (relay.go,
// relay_h2.go) are the same for both.
//
// The request is the outbound HTTP/1.1 head the front-end wrote (x.Req,
// request filters' edits included), converted once per exchange
// (h2request.go), so that both front-ends reach h2 services: an HTTP/1.1
// client of the fast lane gets the conversion both ways. The request body
// goes through a pump (h2body.go) that the transport reads on its own
// goroutine, so that request and response bodies flow at the same time
// (gRPC's bidirectional streams).
//
// Goroutines: the transport's (its connection readers and the body writer
// of each stream) belong to the service's upstream.H2; the exchange owns at
// most one, the client watcher, and stops it in finish.

// h2Exchange is an exchange's state while it goes to an HTTP/2 service.
type h2Exchange struct {
	x    *Exchange
	tmpl *h2Template
	// base ends when the client leaves (the downstream's context, or the
	// watcher); deadline is the gRPC request's (grpc-timeout), zero: none.
	base       context.Context
	cancelBase context.CancelCauseFunc
	deadline   time.Time
	watchStop  chan struct{} // nil: no watcher
	watchDone  chan struct{}

	// The attempt in progress (or the last).
	ctx      context.Context
	cancel   context.CancelCauseFunc
	timer    *time.Timer // response_timeout, armed once the request body went
	headDone atomic.Bool // the response head arrived: the timer is moot
	body     *h2Body
	resp     *http.Response
	head     []byte // the response head, rendered as HTTP/1.1 for wire to judge
}

// Causes an attempt's context ends with.
var (
	errAttemptOver = errors.New("attempt over")
	// errGRPCDeadline is the request's grpc-timeout passing: a timeout
	// (so that a gRPC client gets DEADLINE_EXCEEDED), and no fault of the
	// instance's.
	errGRPCDeadline error = &grpcDeadlineError{}
	errH2Upgrade          = errors.New("upgrades cannot be forwarded to an HTTP/2 upstream")
)

type grpcDeadlineError struct{}

func (*grpcDeadlineError) Error() string   { return "the gRPC request's deadline (grpc-timeout) passed" }
func (*grpcDeadlineError) Timeout() bool   { return true }
func (*grpcDeadlineError) Temporary() bool { return false }

// ContextDownstream is a Downstream whose client's going away ends a
// context (net/http's request context): the h2 client then needs no
// watcher.
type ContextDownstream interface {
	Context() context.Context
}

// BodyInterrupter is a Downstream whose request body read can be ended
// from another goroutine, by a read deadline now: the h2 client stops a
// pump that waits on the client once the response ended. The client
// connection then closes after the answer (its body is left unread).
type BodyInterrupter interface {
	InterruptBody()
}

// FullDuplexDownstream is a Downstream that must be told that the
// response is written while the request body is still read (net/http's
// HTTP/1.1 server).
type FullDuplexDownstream interface {
	EnableFullDuplex()
}

// attemptH2 is attempt (client.go) for an HTTP/2 service.
func (x *Exchange) attemptH2(up *route.Upstream) error {
	if x.Upgrade {
		return errH2Upgrade
	}
	h := x.h2
	if h == nil {
		tmpl, err := parseH2Template(x.Req)
		if err != nil {
			return err
		}
		h = &h2Exchange{x: x, tmpl: tmpl}
		x.h2 = h
		h.start()
	}
	x.unlease()
	up.Health.Acquire()
	x.leased = up
	now := x.Start
	if x.Attempts > 1 {
		now = time.Now()
	}
	err := h.roundTrip(up)
	if err == nil {
		x.Service.AttemptDone(up, x.Resp.Status, nil, now)
		return nil
	}
	h.endAttempt()
	if h.body.clientErr != nil {
		return h.body.clientErr
	}
	if err != errClientGone && err != errGRPCDeadline {
		x.Service.AttemptDone(up, 0, err, now)
	}
	return err
}

// start sets up what lasts for the whole exchange: the client watcher and
// the gRPC deadline.
func (h *h2Exchange) start() {
	x := h.x
	parent := context.Background()
	if cd, ok := x.d.(ContextDownstream); ok {
		parent = cd.Context()
	}
	h.base, h.cancelBase = context.WithCancelCause(parent)
	if fd, ok := x.d.(FullDuplexDownstream); ok && h.tmpl.length != 0 {
		fd.EnableFullDuplex()
	}
	if x.GRPC {
		if d, ok := grpcTimeout(h.tmpl.header.Get("Grpc-Timeout")); ok {
			h.deadline = x.Start.Add(d)
		}
	}
	if parent == context.Background() {
		// No context ends with the client: look at it as the HTTP/1.1
		// client does while it waits (Gone is a non-blocking peek, safe
		// beside the exchange's goroutine).
		h.watchStop, h.watchDone = make(chan struct{}), make(chan struct{})
		go h.watch()
	}
}

func (h *h2Exchange) watch() {
	defer close(h.watchDone)
	t := time.NewTicker(ClientCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-h.watchStop:
			return
		case <-t.C:
			if h.x.d.Gone() {
				h.cancelBase(errClientGone)
				return
			}
		}
	}
}

// roundTrip sends the request to up and, on success, leaves the response
// head in x.Resp and its body in h.resp.
func (h *h2Exchange) roundTrip(up *route.Upstream) error {
	x := h.x
	ctx := h.base
	var cancelDeadline context.CancelFunc = func() {}
	if !h.deadline.IsZero() {
		ctx, cancelDeadline = context.WithDeadlineCause(ctx, h.deadline, errGRPCDeadline)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	h.ctx = ctx
	h.cancel = func(cause error) { cancel(cause); cancelDeadline() }
	h.headDone.Store(false)
	h.timer = time.AfterFunc(time.Duration(1<<63-1), func() {
		if !h.headDone.Load() {
			cancel(errResponseTimeout)
		}
	})
	h.body = newH2Body(h, x)

	req := h.tmpl.request(ctx, x.Service.H2.Scheme(), up.Addr(), h.body)
	resp, err := x.Service.H2.RoundTrip(req)
	h.headDone.Store(true)
	h.timer.Stop()
	if err == nil && ctx.Err() != nil {
		// The head came as the attempt ended: the stream is cut.
		resp.Body.Close()
		err = ctx.Err()
	}
	if err != nil {
		return h.cause(err)
	}
	h.resp = resp
	if err := h.renderHead(resp); err != nil {
		return err
	}
	return nil
}

// cause names why an attempt failed: its context's cause when it ended
// (the client left, grpc-timeout, response_timeout), else err.
func (h *h2Exchange) cause(err error) error {
	if h.ctx.Err() == nil {
		return err
	}
	switch c := context.Cause(h.ctx); c {
	case errResponseTimeout, errGRPCDeadline:
		return c
	}
	return errClientGone
}

// bodySent arms response_timeout once the whole request body went (or
// there was none), as the HTTP/1.1 client does: a long client stream is
// not a slow upstream.
func (h *h2Exchange) bodySent() {
	h.timer.Reset(h.x.Service.Spec().ResponseTimeout)
}

// endAttempt stops the attempt: the body pump (waiting for a read in
// progress), the stream and the response body.
func (h *h2Exchange) endAttempt() {
	if h.cancel == nil {
		return
	}
	h.timer.Stop()
	h.cancel(errAttemptOver)
	h.cancel = nil
	if h.resp != nil {
		h.resp.Body.Close()
		h.resp = nil
	}
	x := h.x
	read, eof := h.body.stop()
	x.bodyRead = x.bodyRead || read
	if eof {
		x.BodyLeft = 0
	}
}

// finish ends the exchange's HTTP/2 state: the last attempt and the
// watcher. The client's body left unread ends its connection (HTTP/1.1).
func (h *h2Exchange) finish() {
	h.endAttempt()
	if h.watchStop != nil {
		close(h.watchStop)
		<-h.watchDone
		h.watchStop = nil
	}
	h.cancelBase(errAttemptOver)
	if h.x.BodyLeft != 0 {
		h.x.BodyUnread = true
	}
	if svc := h.x.Service; svc != nil && svc.H2 != nil {
		svc.H2.Done()
	}
}

// renderHead fills x.Resp from the h2 response: its head is written as an
// HTTP/1.1 head and judged by the one codec (wire.ParseResponseHead), so
// that both front-ends relay it as they relay an HTTP/1.1 upstream's. The
// body is chunked unless its length is known and no trailer is announced
// (h2 trailers then reach an HTTP/1.1 client as chunked trailer fields).
func (h *h2Exchange) renderHead(resp *http.Response) error {
	b := h.head[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(resp.StatusCode), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(resp.StatusCode)...)
	b = append(b, "\r\n"...)
	b = appendResponseFields(b, resp.Header)
	if resp.ContentLength >= 0 && len(resp.Trailer) == 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, resp.ContentLength, 10)
		b = append(b, "\r\n"...)
	} else {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	h.head = b
	complete, err := wire.ParseResponseHead(b, &h.x.Resp)
	if err == nil && !complete {
		err = wire.ErrBadResponse
	}
	return err
}

// h2URL is the target of a request to an instance: scheme and address for
// the transport, the path and query byte for byte as the front-end wrote
// them.
func h2URL(scheme, addr, path, query string, forceQuery bool) *url.URL {
	return &url.URL{Scheme: scheme, Host: addr, Opaque: path, RawQuery: query, ForceQuery: forceQuery}
}

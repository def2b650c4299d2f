// Package proxy holds ferry's front-ends: the HTTP/1.1 fast lane (Server:
// fastconn.go, fastdown.go, fastrequest.go), which serves the everyday request
// on the connection's own goroutine, and the net/http front-end (Handler:
// handler.go, httpdown.go, writer.go), which serves what the fast lane hands
// over and, with HTTP/2, every h2 request; the connection guard (guard.go)
// judges every request head of both. Each front-end parses and writes its
// protocol and nothing else: routing, the attempt policy, the upstream
// client and ferry's answers are the core's (package core), over the
// routing table (route), the instance pools (upstream) and the HTTP/1.1
// codec (wire). Imports point that way only.
package proxy

import (
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/route"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// Options configures a Handler. It is a plain value, read once by NewHandler.
type Options struct {
	Logger    hclog.Logger     // nil: no logging
	AccessLog accesslog.Logger // nil: no access log
}

// Handler is the data plane's http.Handler. It routes each request on the
// Table stored last, picks an instance and forwards the request. It is safe
// for concurrent use; Store may be called at any time.
type Handler struct {
	*core.Forwarder
}

// NewHandler returns a Handler serving an empty table (every request is a
// 404) until Store is called.
func NewHandler(opts Options) *Handler {
	return &Handler{core.NewForwarder(opts.Logger, opts.AccessLog)}
}

// ServeHTTP is the net/http front-end: it serves every request the fast
// lane hands over (and, with HTTP/2, every h2 request). It refuses what the
// edge refuses, routes, and forwards through the same core and upstream
// client as the fast lane.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	var x *core.Exchange
	var rt *route.Route
	path := ""
	var answeredBy string // the route filter that answered, if one did
	reqID := requestIDOf(r, h.EdgePolicy().Trusted(r.RemoteAddr))
	rw.Header()[requestIDField] = []string{reqID}
	defer func() { h.finish(start, rw, r, path, rt, x, answeredBy, reqID) }()

	if r.Method == http.MethodConnect {
		rw.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE")
		writeError(rw, http.StatusMethodNotAllowed, "ferry: method CONNECT not allowed")
		return
	}
	if ref, ok := admit(r); !ok { // limits.go: framing, request target, Host, upgrades
		path = r.URL.EscapedPath()
		rw.Header().Set("Connection", "close")
		writeError(rw, ref.code, ref.msg)
		return
	}
	// r.Host is the request's one authority: the absolute-form target's
	// when there is one (RFC 9112 §3.2.2), else the Host field. Routing and
	// the forwarded Host both use it.
	p := core.PlanRequest(h.Table(), r.Host, r.URL.EscapedPath(), r.ContentLength, r.Context().Done(),
		newHTTPFilterRequest(r, h.EdgePolicy()), r.Context())
	path, rt = p.Path, p.Route
	if p.Code == core.StatusClientClosed {
		rw.status = core.StatusClientClosed // logged, never sent
		return
	}
	if p.Answer != nil {
		answeredBy = filter.AnsweredBy(p.Filters)
		writeFilterAnswer(rw, p.Answer, p.Closing)
		p.Finish()
		return
	}
	if p.Code != 0 {
		if core.GRPCAnswers(p.Service, r.Header.Get("Content-Type")) {
			writeGRPCAnswer(rw, p.Code, p.Msg) // grpcanswer.go
			return
		}
		if p.RetryAfter {
			rw.Header().Set("Retry-After", "1")
		}
		if p.Closing {
			rw.Header().Set("Connection", "close")
		}
		writeError(rw, p.Code, p.Msg)
		return
	}
	limitBody(w, r, rt) // a chunked body is cut off at max_body_bytes
	svc, first, canonical := p.Service, p.First, p.Path

	x = core.Exchanges.Get().(*core.Exchange)
	x.Reset(&httpDown{w: rw, r: r}, start, r.Method, rt, svc, canonical)
	x.ClientStop = r.Close
	x.Filters = p.Filters
	x.Upgrade = wantsUpgrade(r)
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		x.BodyLeft = r.ContentLength
		if r.ContentLength < 0 {
			x.BodyChunk = true
		}
	}
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ip = host
	}
	x.Req = appendHTTPRequest(x.Req[:0], x, r, h.EdgePolicy().Trusted(r.RemoteAddr), ip)

	svc.Budget.BeginRequest()
	x.Forward(first)
	svc.Budget.EndRequest(x.Retries)
	p.Done()
	p.Finish()
	if x.Truncated && !x.GRPC {
		// The upstream broke mid-body: net/http would end a chunked body
		// (or an h2 stream) as if it were whole. Aborting makes it close
		// the connection (HTTP/1.1) or reset the stream (h2), so that the
		// client knows the response is incomplete, as
		// httputil.ReverseProxy does. (A gRPC call ends with its status
		// in trailers instead: grpc.go.) The deferred finish still counts
		// and logs the request.
		panic(http.ErrAbortHandler)
	}
}

// finish counts and logs a request the Handler served and returns its
// exchange to the pool.
func (h *Handler) finish(start time.Time, rw *responseWriter, r *http.Request, path string, rt *route.Route, x *core.Exchange, answeredBy, reqID string) {
	status := http.StatusOK
	switch {
	case rw.wroteHeader, rw.status != 0:
		status = rw.status
	case x != nil && x.Status != 0:
		status = x.Status // 499: nothing was written
	}
	bytes := rw.bytes
	switch {
	case x != nil:
		bytes = max(bytes, x.BytesSent)
		x.Status = status
		x.Record(start)
	case rt != nil: // answered before forwarding (503, 413)
		route.RecordRequest(rt, nil, status, bytes, time.Since(start), 0)
	default:
		h.Stats().Unroute(status)
	}
	if h.AccessLog() != nil {
		e := accesslog.Entries.Get().(*accesslog.Entry)
		*e = accesslog.Entry{Start: start, Duration: time.Since(start), Client: r.RemoteAddr,
			Method: r.Method, Host: r.Host, Path: path, Proto: r.Proto, Status: status, BytesSent: bytes, RequestID: reqID}
		if x != nil {
			x.Describe(e)
		} else if rt != nil {
			e.Route, e.Service, e.AnsweredBy = rt.Spec().Name, rt.Service().Name(), answeredBy
		}
		h.AccessLog().Log(e)
		*e = accesslog.Entry{}
		accesslog.Entries.Put(e)
	}
	if x != nil {
		x.Release()
		core.Exchanges.Put(x)
	}
}

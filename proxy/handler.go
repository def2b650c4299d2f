// Package proxy is ferry's data plane: an immutable routing Table built from
// routes and discovery's instance sets, balancers that pick an instance per
// attempt, two front-ends (the fast lane and net/http's server running the
// Handler) and one forwarding core with ferry's own HTTP/1.1 upstream
// client (see core.go).
package proxy

import (
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
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
	*Forwarder
}

// NewHandler returns a Handler serving an empty table (every request is a
// 404) until Store is called.
func NewHandler(opts Options) *Handler {
	return &Handler{NewForwarder(opts.Logger, opts.AccessLog)}
}

// ServeHTTP is the net/http front-end: it serves every request the fast
// lane hands over (and, with HTTP/2, every h2 request). It refuses what the
// edge refuses, routes, and forwards through the same core and upstream
// client as the fast lane.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &responseWriter{ResponseWriter: w}
	var x *exchange
	var rt *route.Route
	path := ""
	defer func() { h.finish(start, rw, r, path, rt, x) }()

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
	p := planRequest(h.Table(), r.Host, r.URL.EscapedPath(), r.ContentLength, r.Context().Done())
	path, rt = p.path, p.route
	if p.code == statusClientClosed {
		rw.status = statusClientClosed // logged, never sent
		return
	}
	if p.code != 0 {
		if p.retryAfter {
			rw.Header().Set("Retry-After", "1")
		}
		if p.closing {
			rw.Header().Set("Connection", "close")
		}
		writeError(rw, p.code, p.msg)
		return
	}
	limitBody(w, r, rt) // a chunked body is cut off at max_body_bytes
	svc, first, canonical := rt.Service(), p.first, p.path

	x = exchanges.Get().(*exchange)
	x.reset(&httpDown{w: rw, r: r}, start, r.Method, rt, canonical)
	x.clientStop = r.Close
	x.upgrade = wantsUpgrade(r)
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		x.bodyLeft = r.ContentLength
		if r.ContentLength < 0 {
			x.bodyChunk = true
		}
	}
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ip = host
	}
	x.req = appendHTTPRequest(x.req[:0], x, r, h.EdgePolicy().trusted(r.RemoteAddr), ip)

	svc.Budget.BeginRequest()
	x.forward(first)
	svc.Budget.EndRequest(x.retries)
	p.done()
}

// finish counts and logs a request the Handler served and returns its
// exchange to the pool.
func (h *Handler) finish(start time.Time, rw *responseWriter, r *http.Request, path string, rt *route.Route, x *exchange) {
	status := http.StatusOK
	switch {
	case rw.wroteHeader, rw.status != 0:
		status = rw.status
	case x != nil && x.status != 0:
		status = x.status // 499: nothing was written
	}
	bytes := rw.bytes
	switch {
	case x != nil:
		bytes = max(bytes, x.bytesSent)
		x.status = status
		x.record(start)
	case rt != nil: // answered before forwarding (503, 413)
		route.RecordRequest(rt, nil, status, bytes, time.Since(start), 0)
	default:
		h.Stats().unroute(status)
	}
	if h.AccessLog() != nil {
		e := accesslog.Entries.Get().(*accesslog.Entry)
		*e = accesslog.Entry{Start: start, Duration: time.Since(start), Client: r.RemoteAddr,
			Method: r.Method, Host: r.Host, Path: path, Proto: r.Proto, Status: status, BytesSent: bytes}
		if x != nil {
			x.describe(e)
		} else if rt != nil {
			e.Route, e.Service = rt.Spec().Name, rt.Service().Name()
		}
		h.AccessLog().Log(e)
		*e = accesslog.Entry{}
		accesslog.Entries.Put(e)
	}
	if x != nil {
		x.release()
		exchanges.Put(x)
	}
}

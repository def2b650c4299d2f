// Package proxy is ferry's data plane: an immutable routing Table built from
// routes and discovery's instance sets, balancers that pick an instance per
// attempt, and a Handler that forwards requests with httputil.ReverseProxy,
// retrying connect failures on other instances.
package proxy

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options configures a Handler. It is a plain value, read once by NewHandler.
type Options struct {
	Logger    hclog.Logger // nil: no logging
	AccessLog AccessLogger // nil: no access log
}

// Handler is the data plane's http.Handler. It routes each request on the
// Table stored last, picks an instance and forwards the request. It is safe
// for concurrent use; Store may be called at any time.
type Handler struct {
	table  atomic.Pointer[Table]
	logger hclog.Logger
	access AccessLogger
	stats  HandlerStats // see stats.go
	proxy  *httputil.ReverseProxy
	edge   atomic.Pointer[Edge] // see limits.go; nil: trust nobody
}

// NewHandler returns a Handler serving an empty table (every request is a
// 404) until Store is called.
func NewHandler(opts Options) *Handler {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Handler{logger: logger, access: opts.AccessLog}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:      h.rewrite,
		Transport:    dispatcher{},
		ErrorHandler: h.proxyError,
		BufferPool:   bufferPool{},
		ErrorLog:     logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	h.table.Store(emptyTable())
	return h
}

// Store swaps in a new table. Requests in flight keep the table they loaded.
// Safe for concurrent use.
func (h *Handler) Store(t *Table) {
	if t == nil {
		t = emptyTable()
	}
	h.table.Store(t)
}

// Table returns the table in use; never nil. Safe for concurrent use.
func (h *Handler) Table() *Table { return h.table.Load() }

func emptyTable() *Table {
	return &Table{hosts: map[string]*hostRoutes{}, services: map[string]*Service{}}
}

// requestState is one request's routing decision and attempt history. It
// travels to the transport and the error handler in the request context;
// only the handler's goroutine touches it.
type requestState struct {
	route    *Route
	service  *Service
	path     string    // canonical
	first    *Upstream // picked by the handler, before proxying
	upstream *Upstream // the last attempt's
	attempts int
	retries  int    // retries reserved from the service's budget
	lease    *lease // the last successful attempt's
	status   int    // set by the error handler when it writes nothing (499)
	rw       *responseWriter
}

// handlerExchange holds a request's responseWriter and requestState, so that the
// handler allocates them together.
type handlerExchange struct {
	rw responseWriter
	st requestState
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// ServeHTTP routes and forwards one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &handlerExchange{rw: responseWriter{ResponseWriter: w}} // one allocation for both
	rw, st := &x.rw, &x.st
	st.rw = rw
	defer h.record(start, rw, st) // atomics only: see stats.go
	path := ""
	if h.access != nil {
		defer func() { h.logAccess(start, rw, r, path, st) }()
	}

	if r.Method == http.MethodConnect {
		rw.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE")
		writeError(rw, http.StatusMethodNotAllowed, "ferry: method CONNECT not allowed")
		return
	}
	if ref, ok := admit(r); !ok { // limits.go: framing, request target, upgrades
		path = r.URL.EscapedPath()
		rw.Header().Set("Connection", "close")
		writeError(rw, ref.code, ref.msg)
		return
	}
	escaped := r.URL.EscapedPath()
	canonical, err := CanonicalPath(escaped)
	if err != nil {
		path = escaped
		writeError(rw, http.StatusBadRequest, "ferry: "+err.Error())
		return
	}
	path = canonical

	t := h.table.Load()
	host := r.Host
	if r.URL.Host != "" {
		host = "" // absolute-form: route by path only, never by the target's host
	}
	route := t.Match(host, canonical)
	if route == nil {
		writeError(rw, http.StatusNotFound, "ferry: no route for "+canonical)
		return
	}
	svc := route.service
	st.route, st.service, st.path = route, svc, canonical
	if !admitBody(rw, w, r, route) { // limits.go: max_body_bytes
		return
	}
	if m := svc.spec.MaxRequests; m > 0 && svc.budget.requests.Load() >= int64(m) {
		rw.Header().Set("Retry-After", "1")
		writeError(rw, http.StatusServiceUnavailable, "ferry: service "+quote(svc.name)+" is at its max_requests")
		return
	}
	st.first = svc.balancer.pick(svc.upstreams, nil)
	if st.first == nil {
		rw.Header().Set("Retry-After", "1")
		writeError(rw, http.StatusServiceUnavailable, "ferry: no healthy instance of service "+quote(svc.name))
		return
	}

	svc.budget.beginRequest()
	defer func() {
		st.lease.release() // in case the response body was never closed
		svc.budget.endRequest(st.retries)
	}()
	h.proxy.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
}

// rewrite builds the outbound request: the canonical path (less the prefix
// when the route strips it), the query as sent, the client's Host, and
// X-Forwarded-* (see Edge.setForwarded: replaced unless the peer is a
// trusted proxy). The transport sets the instance per attempt.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.In.Context())
	out := pr.Out
	path := st.path
	if st.route.spec.StripPrefix {
		path = stripPrefix(path, st.route.spec.PathPrefix)
	}
	out.URL.Scheme = "http"
	out.URL.Host = st.first.addr
	out.URL.Opaque = ""
	out.URL.User = nil
	out.URL.Fragment, out.URL.RawFragment = "", ""
	setPath(out.URL, path)
	out.Host = pr.In.Host
	h.edge.Load().setForwarded(pr)
}

// stripPrefix removes a route's prefix from a canonical path that matched it
// on a segment boundary: "/api/user/42" → "/42", "/api/user" → "/".
func stripPrefix(path, prefix string) string {
	if prefix == "/" || len(path) < len(prefix) {
		return path
	}
	if rest := path[len(prefix):]; rest != "" {
		return rest
	}
	return "/"
}

// setPath makes u's escaped path exactly p, which is canonical: the upstream
// receives the bytes that were routed on.
func setPath(u *url.URL, p string) {
	if strings.IndexByte(p, '%') < 0 {
		u.Path, u.RawPath = p, ""
		return
	}
	// CanonicalPath never produces an escape that fails to decode.
	decoded, err := url.PathUnescape(p)
	if err != nil {
		decoded = p
	}
	u.Path, u.RawPath = decoded, p
}

// bufferPool lends ReverseProxy 64 KiB copy buffers. Pooling array pointers
// (not slices) keeps Get and Put free of allocations. 64 KiB (not 32) lets a
// loopback read take a 64 KiB body in one piece: one write syscall fewer per
// 64 KiB response (strace: 4.0 → 3.0 writes, 5.9 → 5.0 reads per request),
// for 32 KiB more per request in flight.
type bufferPool struct{}

const copyBufferSize = 64 << 10

var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[copyBufferSize]byte)[:] }

func (bufferPool) Put(b []byte) {
	if len(b) == copyBufferSize {
		copyBuffers.Put((*[copyBufferSize]byte)(b))
	}
}

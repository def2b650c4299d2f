package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-proxy/ferry/health"
)

// DialError is a failure to connect to an upstream instance. Nothing of the
// request was sent, so the request may be retried on another instance
// whatever its method. The dialer of every upstream transport wraps its
// errors in it, so that the retry logic and the error handler can tell a
// connect failure from a failure after the upstream got the request. It is
// immutable once returned and safe for concurrent use.
type DialError struct {
	Addr string // the instance's host:port
	Err  error
}

// Error returns the dial error, naming the address.
func (e *DialError) Error() string { return "connect to upstream " + e.Addr + ": " + e.Err.Error() }

// Unwrap returns the underlying error (a *net.OpError, a context error, …).
func (e *DialError) Unwrap() error { return e.Err }

// Transport tuning that is not per service.
const (
	maxIdleConnsPerHost = 256
	idleConnTimeout     = 90 * time.Second
	tcpKeepAlive        = 30 * time.Second
)

// newTransport returns the long-lived transport of one service: keep-alive
// pools per instance (http.Transport keys them by host:port), HTTP/1.1 only
// (upgrades need it and upstreams are plain HTTP), never a proxy from the
// environment, no transparent gzip (the client's Accept-Encoding passes
// through untouched).
func newTransport(connectTimeout, responseTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: tcpKeepAlive}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, &DialError{Addr: addr, Err: err}
			}
			return newUpstreamConn(c), nil // upstreamconn.go
		},
		MaxIdleConns:          0, // no global cap: the per-host cap bounds each instance
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
		DisableCompression:    true,
	}
}

// retryBudget bounds a service's retries in flight to a fifth of its
// requests in flight (at least minRetryBudget), so that a failing service
// sees at most ~1.2× its load instead of (retries+1)×. It lives as long as
// the service is routed and is safe for concurrent use.
type retryBudget struct {
	requests atomic.Int64  // requests in flight
	retries  atomic.Int64  // requests in flight that have retried
	denied   atomic.Uint64 // retries refused for want of budget (stats.go)
}

const (
	minRetryBudget     = 3
	retryBudgetPercent = 20
)

// tryRetry reserves a retry if the budget allows one; the caller returns it
// with endRequest.
func (b *retryBudget) tryRetry() bool {
	limit := max(b.requests.Load()*retryBudgetPercent/100, minRetryBudget)
	for {
		cur := b.retries.Load()
		if cur >= limit {
			b.denied.Add(1)
			return false
		}
		if b.retries.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

func (b *retryBudget) beginRequest() { b.requests.Add(1) }

// endRequest ends a request begun with beginRequest that reserved retries.
func (b *retryBudget) endRequest(retries int) {
	b.requests.Add(-1)
	if retries > 0 {
		b.retries.Add(-int64(retries))
	}
}

// dispatcher is the ReverseProxy's Transport: it hands each outbound request
// to the service chosen by the handler, found through the request context.
type dispatcher struct{}

func (dispatcher) RoundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	if st == nil {
		return nil, errors.New("proxy: request without routing state")
	}
	return st.service.roundTrip(req, st)
}

// roundTrip sends req to the instance the handler picked and, on a failure
// that allows it, to other instances, at most spec.Retries more times and
// within the retry budget. It runs on the handler's goroutine.
func (s *Service) roundTrip(req *http.Request, st *requestState) (*http.Response, error) {
	up := st.first
	for {
		st.attempts++
		st.upstream = up
		resp, bodyRead, err := s.attempt(req, up, st)
		if err == nil {
			return resp, nil
		}
		if st.attempts > s.spec.Retries || bodyRead || (st.rw != nil && st.rw.relayed1xx) || req.Context().Err() != nil || !retryable(req, err) {
			return nil, err
		}
		next := s.balancer.pick(s.upstreams, up)
		if next == nil || next == up {
			return nil, err // no other instance to try
		}
		if !s.budget.tryRetry() {
			return nil, err
		}
		st.retries++
		up = next
	}
}

// attempt sends req to one instance. The instance counts the request in
// flight until the response body is closed (or the attempt fails).
// bodyRead reports whether the transport consumed any request body byte, in
// which case the body cannot be replayed.
func (s *Service) attempt(req *http.Request, up *Upstream, st *requestState) (resp *http.Response, bodyRead bool, err error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	out := req // the first attempt of a request without a body: as it is (rewrite set its host)
	if hasBody || req.URL.Host != up.addr {
		// A retry, or a body to wrap: a shallow copy, as Request.WithContext
		// makes (the transport modifies neither), so that an earlier
		// attempt's request is never changed under its transport.
		out = new(http.Request)
		*out = *req
		u := *req.URL
		u.Host = up.addr
		out.URL = &u
	}
	var body *attemptBody
	if hasBody {
		// The transport closes the body it was given when a dial fails;
		// this wrapper keeps that Close from reaching the inbound body,
		// which a retry will read.
		body = &attemptBody{r: req.Body}
		out.Body = body
	}

	up.state.Acquire()
	began := time.Now()
	resp, err = s.transport.RoundTrip(out)
	if err != nil {
		up.state.Release()
		if body != nil {
			if ce := body.failed.Load(); ce != nil {
				// The client's body broke (reset, timeout, too large): the
				// client's fault, counted against nobody, never retried.
				return nil, true, ce
			}
		}
		if req.Context().Err() == nil { // a client that went away counts against nobody
			s.attemptDone(up, 0, err, began)
		}
		return nil, body != nil && body.read.Load(), err
	}
	s.attemptDone(up, resp.StatusCode, nil, began)
	// The lease lives inside the body wrapper: one allocation, not two.
	var lb *leasedBody
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
		// A 101 response's body is the upgraded connection; ReverseProxy
		// needs it writable.
		rb := &leasedRWBody{leasedBody: leasedBody{rc: rwc}, w: rwc}
		lb, resp.Body = &rb.leasedBody, rb
	} else {
		lb = &leasedBody{rc: resp.Body}
		resp.Body = lb
	}
	lb.lease.state = up.state
	st.lease = &lb.lease
	return resp, false, nil
}

// report feeds an attempt's outcome to the instance's passive checks and logs
// an ejection.
func (s *Service) report(up *Upstream, o health.Outcome) {
	if d := up.state.Report(o, s.spec.Outlier); d > 0 {
		s.stats.Ejected()
		s.logger.Warn("instance ejected", "instance_id", up.instance.ID, "address", up.addr,
			"for", d.String(), "refused", o == health.Refused)
	}
}

// outcomeOf classifies a failed attempt: a refused connection means the
// instance is gone (a deploy's window where peers answer 502), anything else
// is one failure towards ConsecutiveFailures.
func outcomeOf(err error) health.Outcome {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return health.Refused
	}
	return health.Failure
}

// retryable reports whether a failed attempt may be tried again on another
// instance: a connect failure always (nothing was sent); any other failure
// only for a request without a body and an idempotent method. A response
// timeout is not retried: the upstream has the request and is slow, and
// another attempt would multiply both the client's wait and the load on a
// service that is already struggling.
func retryable(req *http.Request, err error) bool {
	if _, ok := errors.AsType[*DialError](err); ok {
		return true
	}
	if isTimeout(err) {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// isTimeout reports whether err is a timeout other than a connect timeout.
func isTimeout(err error) bool {
	if _, ok := errors.AsType[*DialError](err); ok {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// attemptBody is the request body as one attempt sees it. Close does nothing
// (the server closes the inbound body when the handler returns) so that a
// failed attempt leaves the body readable for the next one; read records
// whether the transport consumed anything, which forbids a retry.
type attemptBody struct {
	r      io.Reader
	read   atomic.Bool                     // the transport may read on its own goroutine
	failed atomic.Pointer[ClientBodyError] // the first read error other than EOF
}

func (b *attemptBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.read.Store(true)
	}
	if err != nil && err != io.EOF {
		b.failed.CompareAndSwap(nil, &ClientBodyError{Err: err})
	}
	return n, err
}

// ClientBodyError is a failure to read the client's request body while
// forwarding it: the client reset the connection, paused longer than the
// read timeout, or sent more than the route's max_body_bytes. It is the
// client's fault: answered 4xx, never retried and never counted against the
// upstream. It is immutable and safe for concurrent use.
type ClientBodyError struct {
	Err error
}

// Error describes the failure.
func (e *ClientBodyError) Error() string {
	return "reading the client's request body: " + e.Err.Error()
}

// Unwrap returns the read error.
func (e *ClientBodyError) Unwrap() error { return e.Err }

func (b *attemptBody) Close() error { return nil }

// lease is one attempt's claim on an instance's in-flight count, released
// exactly once: when the response body is closed, or by the handler when the
// request ends, whichever comes first.
type lease struct {
	state instanceState
	done  atomic.Bool
}

func (l *lease) release() {
	if l != nil && l.done.CompareAndSwap(false, true) {
		l.state.Release()
	}
}

// leasedBody releases the attempt's lease when the response body is closed.
type leasedBody struct {
	rc    io.ReadCloser
	lease lease // the handler holds a pointer to it: never copied
}

func (b *leasedBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

func (b *leasedBody) Close() error {
	err := b.rc.Close()
	b.lease.release()
	return err
}

// leasedRWBody is a leasedBody over an upgraded (101) connection.
type leasedRWBody struct {
	leasedBody
	w io.Writer
}

func (b *leasedRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }

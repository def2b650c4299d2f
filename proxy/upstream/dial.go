package upstream

import "time"

// DialError is a failure to connect to an upstream instance. Nothing of the
// request was sent, so the request may be retried on another instance
// whatever its method. It is immutable once returned and safe for
// concurrent use.
type DialError struct {
	Addr string // the instance's host:port
	Err  error
}

// Error returns the dial error, naming the address.
func (e *DialError) Error() string { return "connect to upstream " + e.Addr + ": " + e.Err.Error() }

// Unwrap returns the underlying error (a *net.OpError, a context error, …).
func (e *DialError) Unwrap() error { return e.Err }

// Upstream connection tuning that is not per service.
const (
	maxIdleConnsPerHost = 256
	idleConnTimeout     = 90 * time.Second
	tcpKeepAlive        = 30 * time.Second
)

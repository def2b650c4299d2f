package route

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/upstream"
)

// retryBudget bounds a service's retries in flight to a fifth of its
// requests in flight (at least minRetryBudget), so that a failing service
// sees at most ~1.2× its load instead of (retries+1)×. It lives as long as
// the service is routed and is safe for concurrent use.
type retryBudget struct {
	Requests atomic.Int64  // requests in flight
	Retries  atomic.Int64  // requests in flight that have retried
	denied   atomic.Uint64 // retries refused for want of budget (stats.go)
	_        [cacheLine - 24]byte
}

const (
	minRetryBudget     = 3
	retryBudgetPercent = 20
)

// TryRetry reserves a retry if the budget allows one; the caller returns it
// with endRequest.
func (b *retryBudget) TryRetry() bool {
	limit := max(b.Requests.Load()*retryBudgetPercent/100, minRetryBudget)
	for {
		cur := b.Retries.Load()
		if cur >= limit {
			b.denied.Add(1)
			return false
		}
		if b.Retries.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

func (b *retryBudget) BeginRequest() { b.Requests.Add(1) }

// EndRequest ends a request begun with beginRequest that reserved retries.
func (b *retryBudget) EndRequest(retries int) {
	b.Requests.Add(-1)
	if retries > 0 {
		b.Retries.Add(-int64(retries))
	}
}

// Report feeds an attempt's outcome to the instance's passive checks and logs
// an ejection.
func (s *Service) Report(up *Upstream, o health.Outcome) {
	if d := up.Health.Report(o, s.spec.Outlier); d > 0 {
		s.stats.Ejected()
		s.Logger.Warn("instance ejected", "instance_id", up.instance.ID, "address", up.addr,
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

// IsTimeout reports whether err is a timeout other than a connect timeout.
func IsTimeout(err error) bool {
	if _, ok := errors.AsType[*upstream.DialError](err); ok {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

package proxy

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/ferry-proxy/ferry/health"
)

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

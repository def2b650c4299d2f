package discovery

import (
	"context"
	"time"
)

// A blocking query's answer is due within its wait time plus Consul's
// jitter (up to wait/16, added to spread wake-ups); a plain read, at once.
// Past that (and timing.queryMargin for a slow network), the query is
// abandoned as a failure: on a path that silently drops packets (a
// partition, a disconnected container network) the request would otherwise
// hang until TCP gives up, minutes later, and the service would never be
// reported stale nor its last known set re-checked.

// bound returns ctx bounded for one query: a blocking one waiting up to
// wait, or a plain read (wait 0).
func (t timing) bound(ctx context.Context, wait time.Duration) (context.Context, context.CancelFunc) {
	if wait <= 0 {
		return context.WithTimeout(ctx, t.readTimeout)
	}
	return context.WithTimeout(ctx, wait+wait/16+t.queryMargin)
}

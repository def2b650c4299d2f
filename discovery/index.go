package discovery

import "time"

// This file holds the pure rules of the query loop: index handling, pacing
// and backoff, as Consul's "Blocking Queries" implementation details ask.
// Randomness comes in as r, uniform in [0, 1), so tests can pin it.

// timing is the loop's pacing. Tests shrink it; production uses defaultTiming.
type timing struct {
	floorMin, floorJitter    time.Duration // pause after every answer: floorMin + r·floorJitter
	spinThreshold, spinWait  time.Duration // an answer faster than spinThreshold that did not move the index waits ~spinWait
	confirmWait              time.Duration // ~delay before re-checking a tentative empty answer
	confirmWindow            time.Duration // how long a tentative empty answer is held at most
	backoffBase, backoffCap  time.Duration // error backoff: full jitter over base·2^(n-1), capped
	queryMargin, readTimeout time.Duration // a query's deadline (see deadline.go)
}

// defaultTiming keeps Consul load low without slowing changes: the floor
// (10–30 ms) bounds a flood of changes to ≤100 queries/s per service yet adds
// little to change→publish latency, since a change wakes the pending query
// at once and is published before the floor.
var defaultTiming = timing{
	floorMin:      10 * time.Millisecond,
	floorJitter:   20 * time.Millisecond,
	spinThreshold: time.Second,
	spinWait:      time.Second,
	confirmWait:   time.Second,
	// Long enough for an agent that restarted to run every restored check
	// once (the first run is staggered over the check's interval, and
	// intervals above 10 s are rare for routed services) and for sidecars
	// to register again what it forgot.
	confirmWindow: 10 * time.Second,
	backoffBase:   250 * time.Millisecond,
	backoffCap:    30 * time.Second,
	queryMargin:   5 * time.Second,
	readTimeout:   10 * time.Second,
}

// floor is the minimum pause between two queries.
func (t timing) floor(r float64) time.Duration {
	return t.floorMin + time.Duration(r*float64(t.floorJitter))
}

// confirm is the delay before re-checking a tentative empty answer, ±20%.
func (t timing) confirm(r float64) time.Duration { return jitter(t.confirmWait, r) }

// indexStep is what one answer's X-Consul-Index means for the next query.
type indexStep struct {
	next  uint64 // WaitIndex for the next query
	reset bool   // the index went backwards (e.g. the agent or cluster restarted)
}

// nextIndex applies Consul's index rules to the index of the last believed
// answer and the one just received: an index that goes backwards resets the
// next query to 0 (a plain read that starts over); an index of 0 is invalid
// and becomes 1 so that the next query still blocks.
func nextIndex(last, got uint64) indexStep {
	switch {
	case got < last:
		return indexStep{next: 0, reset: true}
	case got == 0:
		return indexStep{next: 1}
	default:
		return indexStep{next: got}
	}
}

// pause returns the wait before the next query after a successful answer to
// a query sent with waitIndex, given the last believed index and the new one.
// An answer that came back faster than spinThreshold without the index moving
// forward — a blocking query that did not block, or an index going backwards —
// waits ~spinWait (±20%), so a misbehaving server or a load balancer between
// servers cannot make the loop spin; a plain read (waitIndex 0) answers at
// once by design and is not suspect. Every other answer waits the floor.
func pause(waitIndex, last, got uint64, elapsed time.Duration, t timing, r float64) time.Duration {
	stuck := got < last || (waitIndex > 0 && got <= waitIndex)
	if stuck && elapsed < t.spinThreshold {
		return jitter(t.spinWait, r)
	}
	return t.floor(r)
}

// backoff is the wait after the n-th consecutive failure (n ≥ 1): full
// jitter, r·min(capped, base·2^(n-1)).
func backoff(n int, base, capped time.Duration, r float64) time.Duration {
	d := base
	for i := 1; i < n && d < capped; i++ {
		d *= 2
	}
	d = min(d, capped)
	return time.Duration(r * float64(d))
}

// jitter spreads d by ±20%.
func jitter(d time.Duration, r float64) time.Duration {
	return d + time.Duration((r-0.5)*0.4*float64(d))
}

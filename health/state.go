// Package health holds ferry's own view of each instance's health: requests in
// flight, passive (outlier) failures and active check verdicts. It knows nothing
// of Consul; state is keyed by instance key and survives routing-table rebuilds.
package health

import "sync/atomic"

// State is the long-lived, per-instance health and load state. All methods are
// safe for concurrent use; the request path only touches atomics.
type State struct {
	inflight   atomic.Int64
	activeDown atomic.Bool
}

// Acquire counts a request in flight to the instance.
func (s *State) Acquire() { s.inflight.Add(1) }

// Release ends a request counted by Acquire.
func (s *State) Release() { s.inflight.Add(-1) }

// InFlight is the number of requests in flight to the instance.
func (s *State) InFlight() int64 { return s.inflight.Load() }

// Available reports whether the proxy may send new requests to the instance.
func (s *State) Available() bool { return !s.activeDown.Load() }

// ActiveHealthy reports the active checks' verdict (true when none run).
func (s *State) ActiveHealthy() bool { return !s.activeDown.Load() }

// setActive records an active-check verdict and reports whether it changed.
func (s *State) setActive(healthy bool) bool {
	return s.activeDown.CompareAndSwap(healthy, !healthy)
}

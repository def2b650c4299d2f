// Package health holds ferry's own view of each instance's health: requests in
// flight, passive (outlier) failures and ejections, and active check verdicts.
// It knows nothing of Consul; state is keyed by instance key and survives
// routing-table rebuilds and reloads.
package health

import (
	"sync/atomic"
	"time"
)

// State is the long-lived, per-instance health and load state. All methods are
// safe for concurrent use; the request path only touches atomics, and reads
// the clock only while the instance is ejected.
type State struct {
	// inflight is written twice by every request (Acquire, Release), on a
	// cache line of its own: Available's reads of the fields below, also
	// by every request, then do not miss on the other core after each
	// write. The whole State is a multiple of cacheLine (see the test), so
	// the allocator gives no other object a share of its lines.
	inflight atomic.Int64
	_        [cacheLine - 8]byte

	activeDown atomic.Bool
	drainedAt  atomic.Int64 // unix nanoseconds; 0 when not drained

	// For operators (the admin API, the status page), written on
	// transitions only.
	activeSince  atomic.Int64           // unix nanoseconds of the last verdict change
	checkError   atomic.Pointer[string] // the last failed probe's error
	ejectedAt    atomic.Int64           // unix nanoseconds the last ejection began
	ejectRefused atomic.Bool            // the last ejection was for a refused connection

	failures     atomic.Int32 // consecutive passive failures
	ejections    atomic.Int32 // ejections so far, for the growing ejection time
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when not ejected
	lastEjection atomic.Int64 // unix nanoseconds the last ejection ended

	panic *Panic                         // the service's panic mode; set once by Registry.State
	_     [cacheLine - 80%cacheLine]byte // the fields after inflight's line are 80 bytes
}

// cacheLine is a CPU cache line's size (64 bytes on amd64 and on common
// arm64 cores).
const cacheLine = 64

// Acquire counts a request in flight to the instance.
func (s *State) Acquire() { s.inflight.Add(1) }

// Release ends a request counted by Acquire.
func (s *State) Release() { s.inflight.Add(-1) }

// InFlight is the number of requests in flight to the instance.
func (s *State) InFlight() int64 { return s.inflight.Load() }

// Available reports whether the proxy may send new requests to the instance:
// its active checks (if any run) pass, it is not ejected and not drained —
// or its service is in panic mode (see Panic), when every routable instance
// that is not drained is.
func (s *State) Available() bool {
	if s.drainedAt.Load() != 0 {
		return false // an operator's drain holds even in panic mode
	}
	return s.ownHealthy() || s.panic.Active()
}

// ownHealthy is ferry's own verdict: active checks pass and not ejected.
func (s *State) ownHealthy() bool {
	if s.activeDown.Load() {
		return false
	}
	until := s.ejectedUntil.Load()
	return until == 0 || time.Now().UnixNano() >= until
}

// OwnHealthy reports ferry's own verdict on the instance, panic mode aside:
// its active checks (if any run) pass and it is not ejected.
func (s *State) OwnHealthy() bool { return s.ownHealthy() }

// changed re-evaluates the service's panic mode after a change of verdict.
func (s *State) changed() {
	if s.panic != nil {
		s.panic.Evaluate()
	}
}

// ActiveHealthy reports the active checks' verdict (true when none run).
func (s *State) ActiveHealthy() bool { return !s.activeDown.Load() }

// setActive records an active-check verdict and reports whether it changed.
func (s *State) setActive(healthy bool) bool {
	if !s.activeDown.CompareAndSwap(healthy, !healthy) {
		return false
	}
	s.activeSince.Store(time.Now().UnixNano())
	s.changed()
	return true
}

// ActiveSince returns when the active checks' verdict last changed (the
// zero time: never). With ActiveHealthy false, it is when the instance was
// taken out of rotation.
func (s *State) ActiveSince() time.Time { return unixTime(s.activeSince.Load()) }

// CheckError returns the error of the last failed active probe ("" when
// none failed yet).
func (s *State) CheckError() string {
	if p := s.checkError.Load(); p != nil {
		return *p
	}
	return ""
}

// Drain stops new requests to the instance, as HAProxy's "set server state
// drain" does: requests in flight finish, and it stays out of rotation until
// Undrain, across reloads, for as long as the instance stays registered. It
// reports whether the instance was not drained before.
func (s *State) Drain(now time.Time) bool {
	return s.drainedAt.CompareAndSwap(0, now.UnixNano())
}

// Undrain puts a drained instance back in rotation (its other checks still
// apply) and reports whether it was drained.
func (s *State) Undrain() bool { return s.drainedAt.Swap(0) != 0 }

// Drained reports whether the instance is drained.
func (s *State) Drained() bool { return s.drainedAt.Load() != 0 }

// DrainedSince returns when the instance was drained, or the zero time.
func (s *State) DrainedSince() time.Time { return unixTime(s.drainedAt.Load()) }

// LastEjection returns when the last ejection began (the zero time: never)
// and whether it was for a refused connection rather than consecutive
// failures.
func (s *State) LastEjection() (at time.Time, refused bool) {
	return unixTime(s.ejectedAt.Load()), s.ejectRefused.Load()
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// EjectedUntil returns when the current ejection ends, or the zero time when
// the instance is not ejected.
func (s *State) EjectedUntil() time.Time {
	until := s.ejectedUntil.Load()
	if until == 0 || time.Now().UnixNano() >= until {
		return time.Time{}
	}
	return time.Unix(0, until)
}

// Ejections is how many times the instance was ejected (it decays: see Outlier).
func (s *State) Ejections() int { return int(s.ejections.Load()) }

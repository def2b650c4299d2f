package health

import "time"

// Outlier is a service's passive-check policy (SPEC §5).
type Outlier struct {
	// ConsecutiveFailures ejects an instance after this many failures in a
	// row (connect failures, resets, 5xx answers). A refused connection
	// ejects at once.
	ConsecutiveFailures int
	// BaseEjectionTime × the number of ejections is how long an ejection
	// lasts, capped at MaxEjectionTime.
	BaseEjectionTime time.Duration
}

// MaxEjectionTime caps one ejection, as Envoy's max_ejection_time does.
const MaxEjectionTime = 5 * time.Minute

// ejectionMemory is how long after an ejection ends its count still
// lengthens the next one; an instance that has behaved for longer starts
// over at BaseEjectionTime.
const ejectionMemory = 5 * time.Minute

// Outcome classifies one attempt's result for passive checks.
type Outcome int

// Outcomes of an attempt.
const (
	// Success: the upstream answered below 500.
	Success Outcome = iota
	// Failure: a connect failure, reset, timeout or 5xx answer.
	Failure
	// Refused: the connection was refused; the instance is gone.
	Refused
)

// Report records an attempt's outcome under policy p and returns how long the
// instance was ejected for, or 0 when this report did not eject it. A client
// that went away must not be reported at all.
func (s *State) Report(o Outcome, p Outlier) time.Duration {
	switch o {
	case Success:
		// Only write when needed: every request reports, and a shared
		// cache line written on every success would cost all cores.
		if s.failures.Load() != 0 {
			s.failures.Store(0)
		}
		return 0
	case Refused:
		return s.eject(p, time.Now(), true)
	}
	if p.ConsecutiveFailures <= 0 || int(s.failures.Add(1)) < p.ConsecutiveFailures {
		return 0
	}
	return s.eject(p, time.Now(), false)
}

// eject ejects the instance unless it already is, and returns the ejection
// time (0 when it was already ejected).
func (s *State) eject(p Outlier, now time.Time, refused bool) time.Duration {
	nowNs := now.UnixNano()
	cur := s.ejectedUntil.Load()
	if cur != 0 && nowNs < cur {
		return 0
	}
	if cur != 0 {
		s.lastEjection.Store(cur)
	}
	n := s.ejections.Load()
	if last := s.lastEjection.Load(); last != 0 && nowNs-last > int64(ejectionMemory) {
		n = 0
	}
	n++
	d := min(time.Duration(n)*p.BaseEjectionTime, MaxEjectionTime)
	if d <= 0 {
		return 0
	}
	if !s.ejectedUntil.CompareAndSwap(cur, nowNs+int64(d)) {
		return 0 // another request ejected it first
	}
	s.ejections.Store(n)
	s.failures.Store(0)
	s.ejectedAt.Store(nowNs)
	s.ejectRefused.Store(refused)
	s.changed()
	return d
}

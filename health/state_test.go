package health

import (
	"testing"
	"time"
	"unsafe"
)

// TestDrain: a drained instance takes no new requests until undrained,
// whatever its other checks say, and requests in flight are not touched.
func TestDrain(t *testing.T) {
	var s State
	s.Acquire() // a request in flight
	now := time.Unix(1700000000, 0)
	if !s.Drain(now) {
		t.Fatal("Drain of an instance in rotation: got false, want true")
	}
	if s.Drain(now.Add(time.Second)) {
		t.Error("Drain twice: got true, want false (already drained)")
	}
	if s.Available() {
		t.Error("a drained instance is available")
	}
	if !s.Drained() || !s.DrainedSince().Equal(now) {
		t.Errorf("Drained %v since %v, want true since %v", s.Drained(), s.DrainedSince(), now)
	}
	if s.InFlight() != 1 {
		t.Errorf("in flight %d after drain, want 1 (requests finish)", s.InFlight())
	}
	s.Release()
	if !s.Undrain() || s.Undrain() {
		t.Error("Undrain: want true once, then false")
	}
	if !s.Available() || !s.DrainedSince().IsZero() {
		t.Error("an undrained instance is not back in rotation")
	}
}

// TestStateRecordsWhyAndWhen: ejections and active verdicts keep when they
// happened and why, for the admin API.
func TestStateRecordsWhyAndWhen(t *testing.T) {
	var s State
	if at, _ := s.LastEjection(); !at.IsZero() || !s.ActiveSince().IsZero() || s.CheckError() != "" {
		t.Fatal("a new state reports history")
	}
	before := time.Now()
	s.Report(Refused, Outlier{ConsecutiveFailures: 5, BaseEjectionTime: time.Minute})
	at, refused := s.LastEjection()
	if at.Before(before) || !refused {
		t.Errorf("LastEjection: got %v refused=%v, want ≥ %v refused=true", at, refused, before)
	}
	s.setActive(false)
	if s.ActiveSince().Before(before) {
		t.Errorf("ActiveSince %v not set on the change", s.ActiveSince())
	}
}

// TestStateOwnsItsCacheLines: a State is a whole number of cache lines, so
// that no other object shares the line every request writes.
func TestStateOwnsItsCacheLines(t *testing.T) {
	if size := unsafe.Sizeof(State{}); size%cacheLine != 0 {
		t.Errorf("State is %d bytes, not a multiple of %d", size, cacheLine)
	}
	if off := unsafe.Offsetof(State{}.activeDown); off != cacheLine {
		t.Errorf("State.activeDown at offset %d: want the line after inflight's (%d)", off, cacheLine)
	}
}

package health

import (
	"testing"
	"time"
)

func TestOutlierEjection(t *testing.T) {
	p := Outlier{ConsecutiveFailures: 3, BaseEjectionTime: 50 * time.Millisecond}
	tests := []struct {
		name        string
		outcomes    []Outcome
		wantEjected time.Duration // returned by the last report
		wantAvail   bool
	}{
		{"below threshold", []Outcome{Failure, Failure}, 0, true},
		{"threshold reached", []Outcome{Failure, Failure, Failure}, 50 * time.Millisecond, false},
		{"success resets the run", []Outcome{Failure, Failure, Success, Failure, Failure}, 0, true},
		{"refused ejects at once", []Outcome{Refused}, 50 * time.Millisecond, false},
		{"already ejected", []Outcome{Refused, Refused}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s State
			var got time.Duration
			for _, o := range tt.outcomes {
				got = s.Report(o, p)
			}
			if got != tt.wantEjected {
				t.Errorf("last report ejected for %v, want %v", got, tt.wantEjected)
			}
			if s.Available() != tt.wantAvail {
				t.Errorf("Available() = %v, want %v", s.Available(), tt.wantAvail)
			}
		})
	}
}

func TestEjectionGrowsAndEnds(t *testing.T) {
	p := Outlier{ConsecutiveFailures: 1, BaseEjectionTime: 20 * time.Millisecond}
	var s State
	if d := s.Report(Failure, p); d != 20*time.Millisecond {
		t.Fatalf("first ejection %v, want 20ms", d)
	}
	if s.EjectedUntil().IsZero() {
		t.Fatal("EjectedUntil is zero during an ejection")
	}
	time.Sleep(25 * time.Millisecond)
	if !s.Available() || !s.EjectedUntil().IsZero() {
		t.Fatal("instance not back after the ejection time")
	}
	if d := s.Report(Failure, p); d != 40*time.Millisecond {
		t.Fatalf("second ejection %v, want 40ms (2 × base)", d)
	}
	if s.Ejections() != 2 {
		t.Fatalf("Ejections() = %d, want 2", s.Ejections())
	}
}

func TestEjectionCapped(t *testing.T) {
	p := Outlier{ConsecutiveFailures: 1, BaseEjectionTime: 4 * time.Minute}
	var s State
	s.ejections.Store(3)
	s.lastEjection.Store(time.Now().UnixNano())
	if d := s.Report(Failure, p); d != MaxEjectionTime {
		t.Fatalf("ejection %v, want the cap %v", d, MaxEjectionTime)
	}
}

func TestActiveVerdict(t *testing.T) {
	var s State
	if !s.ActiveHealthy() || !s.Available() {
		t.Fatal("a new state must be healthy")
	}
	if !s.setActive(false) || s.setActive(false) {
		t.Fatal("setActive must report only transitions")
	}
	if s.Available() {
		t.Fatal("available while active checks fail")
	}
}

func BenchmarkAvailable(b *testing.B) {
	var s State
	b.ReportAllocs()
	for b.Loop() {
		s.Available()
	}
}

func BenchmarkReportSuccess(b *testing.B) {
	var s State
	p := Outlier{ConsecutiveFailures: 5, BaseEjectionTime: time.Second}
	b.ReportAllocs()
	for b.Loop() {
		s.Report(Success, p)
	}
}

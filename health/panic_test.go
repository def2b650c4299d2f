package health

import (
	"testing"
	"time"
)

func TestPanicThreshold(t *testing.T) {
	r := NewRegistry()
	var states []*State
	for _, id := range []string{"a", "b", "c", "d"} {
		states = append(states, r.State("web", id))
	}
	p := r.Panic("web")
	var transitions []bool
	p.Set(50, states, func(on bool, healthy, total int) { transitions = append(transitions, on) })
	if p.Active() {
		t.Fatal("all healthy: panic on")
	}
	pol := Outlier{ConsecutiveFailures: 1, BaseEjectionTime: time.Minute}
	states[0].Report(Refused, pol)
	states[1].Report(Refused, pol) // 2 of 4 healthy: 50%, not below
	if p.Active() || states[0].Available() {
		t.Fatalf("50%% healthy at threshold 50: panic %v, ejected available %v", p.Active(), states[0].Available())
	}
	states[2].setActive(false) // 1 of 4: below 50%
	if !p.Active() {
		t.Fatal("25% healthy at threshold 50: want panic")
	}
	for i, s := range states {
		if !s.Available() {
			t.Errorf("in panic, instance %d not available", i)
		}
		if i < 3 && s.OwnHealthy() {
			t.Errorf("instance %d: OwnHealthy true", i)
		}
	}
	states[2].setActive(true)
	if p.Active() {
		t.Fatal("back to 50%: want panic off")
	}
	p.Set(0, states, nil)
	if p.Active() {
		t.Fatal("threshold 0: panic on")
	}
	if len(transitions) != 2 || !transitions[0] || transitions[1] {
		t.Errorf("transitions = %v, want [true false]", transitions)
	}
}

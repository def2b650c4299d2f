// Sequences of Consul answers (index rules, fail-static holds) played
// through the fake HealthClient.

package discovery

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestManagerIndexZero(t *testing.T) {
	f, m := runWeb(t)
	c := f.next(t, "web")
	c.ok(0, e1)
	c = f.next(t, "web")
	if c.opts.WaitIndex != 1 {
		t.Fatalf("after index 0: WaitIndex = %d, want 1", c.opts.WaitIndex)
	}
	if s := m.Sets()["web"]; !s.Known || len(s.Instances) != 1 {
		t.Fatalf("answer with index 0 not used: %+v", s)
	}
	// A blocking query on 1 that answers at once with 0 again must not spin.
	c.ok(0, e1)
	n := f.next(t, "web")
	if gap := n.at.Sub(c.at); gap < 150*time.Millisecond {
		t.Errorf("re-query after a non-blocking answer came after %v, want ≥ ~spinWait (200ms ±20%%)", gap)
	}
	if n.opts.WaitIndex != 1 {
		t.Errorf("WaitIndex = %d, want 1", n.opts.WaitIndex)
	}
}

func TestManagerSpinGuard(t *testing.T) {
	f, _ := runWeb(t)
	f.next(t, "web").ok(10, e1)
	c := f.next(t, "web")
	c.ok(10, e1) // returned at once without a new index
	n := f.next(t, "web")
	if gap := n.at.Sub(c.at); gap < 150*time.Millisecond {
		t.Errorf("re-query after %v, want ≥ ~spinWait", gap)
	}
	// A real change is followed by only the floor.
	n.ok(11, e1, e2)
	c = f.next(t, "web")
	if gap := c.at.Sub(n.at); gap > 150*time.Millisecond {
		t.Errorf("re-query after a change took %v, want the floor only", gap)
	}
}

func TestManagerIndexBackwards(t *testing.T) {
	f, m := runWeb(t)
	f.next(t, "web").ok(100, e1, e2)
	c := f.next(t, "web")
	drain(m)
	c.ok(5, e3) // non-empty: believed at once
	waitChanged(t, m)
	if got, want := keys(m.Sets()["web"]), []string{"n2/web-3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("instances = %v, want %v", got, want)
	}
	c = f.next(t, "web")
	if c.opts.WaitIndex != 0 {
		t.Fatalf("after index went backwards WaitIndex = %d, want 0", c.opts.WaitIndex)
	}
	c.ok(6, e3)
	if c = f.next(t, "web"); c.opts.WaitIndex != 6 {
		t.Fatalf("WaitIndex = %d, want 6", c.opts.WaitIndex)
	}
}

func TestManagerEmptyAfterResetIsTentative(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, confirmEmpty := range []bool{true, false} {
		name := map[bool]string{true: "confirmed", false: "not confirmed"}[confirmEmpty]
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			f := newFakeHealth()
			m := newTestManager(t, f, Options{}, Watch{Service: "web"})
			stop := run(t, m)
			defer stop()
			f.next(t, "web").ok(100, e1, e2)
			c := f.next(t, "web")
			drain(m)
			c.ok(3) // agent restarted: low index, empty
			n := f.next(t, "web")
			noChange(t, m)
			if s := m.Sets()["web"]; len(s.Instances) != 2 || s.Stale {
				t.Fatalf("tentative empty answer replaced the set: %+v", s)
			}
			if n.opts.WaitIndex != 0 {
				t.Errorf("confirming query WaitIndex = %d, want 0", n.opts.WaitIndex)
			}
			if gap := n.at.Sub(c.at); gap < 150*time.Millisecond {
				t.Errorf("confirming query after %v, want ~confirmWait (200ms ±20%%)", gap)
			}
			if confirmEmpty {
				// Still empty: held, and waited on by a blocking query
				// on its index, no longer than the confirm window.
				n.ok(4)
				noChange(t, m)
				if s := m.Sets()["web"]; len(s.Instances) != 2 {
					t.Fatalf("empty answer within the confirm window replaced the set: %+v", s)
				}
				endOfWindow(t, f, c.at, 4)
				waitChanged(t, m)
				if s := m.Sets()["web"]; len(s.Instances) != 0 || s.Stale || !s.Known {
					t.Fatalf("empty answer at the end of the window not believed: %+v", s)
				}
			} else {
				n.ok(5, e1)
				waitChanged(t, m)
				if got, want := keys(m.Sets()["web"]), []string{"n1/web-1"}; !reflect.DeepEqual(got, want) {
					t.Fatalf("instances = %v, want %v", got, want)
				}
			}
			f.next(t, "web")
		})
	}
}

func TestManagerLeaderlessEmptyIsSuspect(t *testing.T) {
	f, m := runWeb(t)

	// Before any answer: not believed, so not ready.
	f.next(t, "web").noLeader(1)
	c := f.next(t, "web")
	if s := m.Sets()["web"]; s.Known || !errors.Is(s.Err, ErrNoLeader) || m.Ready() {
		t.Fatalf("leaderless first answer: %+v ready %v", s, m.Ready())
	}
	c.ok(10, e1, e2)
	c = f.next(t, "web")
	drain(m)
	c.noLeader(11)
	waitChanged(t, m)
	s := m.Sets()["web"]
	if len(s.Instances) != 2 || !s.Stale || !errors.Is(s.Err, ErrNoLeader) ||
		!strings.HasPrefix(s.Err.Error(), `discovery: service "web": `) {
		t.Fatalf("leaderless empty answer: %+v", s)
	}
	c = f.next(t, "web")
	if c.opts.WaitIndex != 0 {
		t.Errorf("retry WaitIndex = %d, want 0", c.opts.WaitIndex)
	}
	// A leaderless non-empty answer is used.
	c.noLeader(12, e1)
	waitChanged(t, m)
	if got := keys(m.Sets()["web"]); len(got) != 1 || m.Sets()["web"].Stale {
		t.Fatalf("leaderless non-empty answer: %+v", m.Sets()["web"])
	}
	f.next(t, "web")
}

func TestManagerLeaderlessEmptyRecoveryNeedsConfirmation(t *testing.T) {
	f, m := runWeb(t)
	f.next(t, "web").ok(10, e1, e2)
	f.next(t, "web").noLeader(11)
	c := f.next(t, "web")
	c.ok(12) // leader back, still empty: first answer after an outage is tentative
	n := f.next(t, "web")
	if s := m.Sets()["web"]; len(s.Instances) != 2 {
		t.Fatalf("first empty answer after an outage replaced the set: %+v", s)
	}
	drain(m)
	n.ok(12)
	endOfWindow(t, f, c.at, 12) // still empty when the confirm window ends
	waitChanged(t, m)
	if s := m.Sets()["web"]; len(s.Instances) != 0 || s.Stale || s.Err != nil {
		t.Fatalf("confirmed empty: %+v", s)
	}
	f.next(t, "web")
}

// endOfWindow answers the query that holds a tentative empty answer (the
// first came at first): a blocking query on index, which Consul answers
// unchanged, and empty, at the end of the confirm window.
func endOfWindow(t *testing.T, f *fakeHealth, first time.Time, index uint64) {
	t.Helper()
	b := f.next(t, "web")
	if b.opts.WaitIndex != index || b.opts.WaitTime > testTiming.confirmWindow {
		t.Errorf("holding query: WaitIndex %d, WaitTime %v; want %d and at most the window (%v)",
			b.opts.WaitIndex, b.opts.WaitTime, index, testTiming.confirmWindow)
	}
	if wait := testTiming.confirmWindow - time.Since(first); wait > 0 {
		time.Sleep(wait)
	}
	b.ok(index)
}

func TestManagerStreamingEmptyIsBelieved(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	m := newTestManager(t, f, Options{UseCache: true}, Watch{Service: "web"})
	stop := run(t, m)
	defer stop()
	f.next(t, "web").ok(10, e1, e2)
	c := f.next(t, "web")
	drain(m)
	c.streaming(11) // streaming answers never carry KnownLeader
	waitChanged(t, m)
	if s := m.Sets()["web"]; len(s.Instances) != 0 || s.Stale {
		t.Fatalf("streaming empty answer: %+v", s)
	}
	f.next(t, "web")
}

// downThenBack starts a manager watching web, which knew e1 and e2 when its
// Consul went down; it returns the query that follows the outage, not yet
// answered (the set is stale by then). The manager stops when t ends.
func downThenBack(t *testing.T) (*fakeHealth, *Manager, *fakeCall) {
	t.Helper()
	f := newFakeHealth()
	m := newTestManager(t, f, Options{}, Watch{Service: "web"})
	t.Cleanup(run(t, m))
	f.next(t, "web").ok(100, e1, e2)
	c := f.next(t, "web")
	drain(m)
	c.fail(errConsulDown)
	r := f.next(t, "web")
	waitChanged(t, m) // stale
	return f, m, r
}

// TestManagerSettlesAfterAnOutage: a restarted server first answers from
// its restored catalog (the instances still passing), then learns from its
// agent that the restored checks are critical until they run. The empty
// answer that follows, within the confirm window of the recovery, is held
// like one that came first; one after that window is believed.
func TestManagerSettlesAfterAnOutage(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered: runs after the manager stops
	f, m, r := downThenBack(t)
	recovered := time.Now()
	r.ok(101, e1, e2)        // back: the restored catalog, checks passing
	waitChanged(t, m)        // no longer stale
	f.next(t, "web").ok(102) // the agent synced its critical checks
	n := f.next(t, "web")
	noChange(t, m)
	if s := m.Sets()["web"]; len(s.Instances) != 2 {
		t.Fatalf("an empty answer %v after the recovery replaced the set: %v", time.Since(recovered), keys(s))
	}
	n.ok(103, e1, e2) // the checks ran
	f.next(t, "web").ok(104, e1, e2)

	// Past the window, the service really emptying is believed.
	if wait := testTiming.confirmWindow - time.Since(recovered); wait > 0 {
		time.Sleep(wait + 50*time.Millisecond)
	}
	f.next(t, "web").ok(105)
	waitChanged(t, m)
	if s := m.Sets()["web"]; len(s.Instances) != 0 {
		t.Fatalf("an empty answer after the window: instances %v, want none", keys(s))
	}
	f.next(t, "web")
}

// An agent that restarted answers at first with its services' checks not
// yet run (critical: nothing routable), then with them passing: the set is
// held through that, and never published empty.
func TestManagerHoldsThroughRestoredChecks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // first registered: runs after the manager stops
	f, m, r := downThenBack(t)
	r.ok(7) // back, with a low index and nothing passing yet
	n := f.next(t, "web")
	n.ok(7) // the confirming read: still nothing
	b := f.next(t, "web")
	if b.opts.WaitIndex != 7 {
		t.Fatalf("holding query WaitIndex = %d, want 7", b.opts.WaitIndex)
	}
	noChange(t, m)
	b.ok(8, e1, e2) // the checks ran: a change within the window
	waitChanged(t, m)
	s := m.Sets()["web"]
	if got, want := keys(s), []string{"n1/web-1", "n1/web-2"}; !reflect.DeepEqual(got, want) || s.Stale {
		t.Fatalf("instances = %v (stale %v), want %v", got, s.Stale, want)
	}
	f.next(t, "web")
}

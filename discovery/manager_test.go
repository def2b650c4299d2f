package discovery

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	e1 = entry("n1", "10.0.0.1", "web-1", "", 8001)
	e2 = entry("n1", "10.0.0.1", "web-2", "", 8002)
	e3 = entry("n2", "10.0.0.2", "web-3", "", 8003)
)

func TestManagerFirstAnswerAndChanges(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	m := newTestManager(t, f, Options{WaitTime: 7 * time.Second, AllowStale: true, UseCache: true, Datacenter: "dc9"},
		Watch{Service: "web", Tag: "v1"})
	if s := m.Sets()["web"]; s == nil || s.Known || s.Service != "web" {
		t.Fatalf("before Run: Sets()[web] = %+v, want unknown set", s)
	}
	if m.Ready() {
		t.Fatal("Ready before the first answer")
	}
	stop := run(t, m)
	defer stop()
	waitChanged(t, m) // from Watch

	c := f.next(t, "web")
	if c.tag != "v1" || c.passing || c.opts.WaitIndex != 0 || c.opts.WaitTime != 7*time.Second ||
		!c.opts.AllowStale || !c.opts.UseCache || c.opts.Datacenter != "dc9" {
		t.Fatalf("first query: tag %q passing %v opts %+v", c.tag, c.passing, c.opts)
	}
	c.ok(10, e2, e1)
	waitChanged(t, m)
	s := m.Sets()["web"]
	if !s.Known || s.Stale || s.Err != nil || s.Index != 10 || s.LastContact.IsZero() {
		t.Fatalf("after first answer: %+v", s)
	}
	if got, want := keys(s), []string{"n1/web-1", "n1/web-2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("instances = %v, want %v", got, want)
	}
	if !m.Ready() {
		t.Fatal("not Ready after the first answer")
	}

	c = f.next(t, "web")
	if c.opts.WaitIndex != 10 {
		t.Fatalf("WaitIndex = %d, want 10", c.opts.WaitIndex)
	}
	c.ok(11, e1, e2, e3)
	waitChanged(t, m)
	if got, want := keys(m.Sets()["web"]), []string{"n1/web-1", "n1/web-2", "n2/web-3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("instances = %v, want %v", got, want)
	}
	c = f.next(t, "web")
	c.ok(12, e3)
	waitChanged(t, m)
	if got, want := keys(m.Sets()["web"]), []string{"n2/web-3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("instances = %v, want %v", got, want)
	}
	// An empty answer from a healthy Consul is believed.
	c = f.next(t, "web")
	c.ok(13)
	waitChanged(t, m)
	if s := m.Sets()["web"]; len(s.Instances) != 0 || !s.Known || s.Stale {
		t.Fatalf("after empty answer: %+v", s)
	}
	f.next(t, "web")
}

func TestManagerUnchangedNotRepublished(t *testing.T) {
	f, m := runWeb(t)
	f.next(t, "web").ok(10, e1, e2)
	c := f.next(t, "web")
	drain(m)
	before := m.Sets()
	old := before["web"]

	c.ok(15, e2, e1) // same instances, new index (e.g. an unrelated write)
	c = f.next(t, "web")
	noChange(t, m)
	s := m.Sets()["web"]
	if s.Index != 15 || c.opts.WaitIndex != 15 {
		t.Errorf("Index %d, next WaitIndex %d, want 15 and 15", s.Index, c.opts.WaitIndex)
	}
	if &s.Instances[0] != &old.Instances[0] {
		t.Error("unchanged instances were copied, want the published slice reused")
	}
	// The snapshot taken before is untouched (copy-on-write).
	if before["web"] != old || old.Index != 10 {
		t.Errorf("old snapshot changed: %+v", before["web"])
	}
}

func TestManagerErrorsThenSuccess(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	var mu sync.Mutex
	var hooked []error
	m := newTestManager(t, f, Options{OnError: func(service string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if service != "web" {
			t.Errorf("OnError service = %q", service)
		}
		hooked = append(hooked, err)
	}}, Watch{Service: "web"})
	stop := run(t, m)
	defer stop()

	// Errors before any answer: unknown, stale, not ready.
	f.next(t, "web").fail(errConsulDown)
	c := f.next(t, "web")
	if s := m.Sets()["web"]; s.Known || !s.Stale || !errors.Is(s.Err, errConsulDown) || m.Ready() {
		t.Fatalf("after first error: %+v, ready %v", s, m.Ready())
	}
	c.ok(10, e1, e2)
	c = f.next(t, "web")
	drain(m)

	// Errors after an answer: the last set keeps serving, marked stale.
	c.fail(errConsulDown)
	waitChanged(t, m)
	for i := 0; i < 3; i++ {
		c = f.next(t, "web")
		if c.opts.WaitIndex != 0 {
			t.Errorf("retry %d: WaitIndex = %d, want 0 (a plain read after an error)", i, c.opts.WaitIndex)
		}
		s := m.Sets()["web"]
		if !s.Stale || len(s.Instances) != 2 || !s.Known || s.Index != 10 {
			t.Fatalf("while failing: %+v", s)
		}
		want := `discovery: service "web": blocking query: ` + errConsulDown.Error()
		if s.Err == nil || s.Err.Error() != want || !errors.Is(s.Err, errConsulDown) {
			t.Fatalf("Err = %v, want %q", s.Err, want)
		}
		if i < 2 {
			c.fail(errConsulDown)
		}
	}
	noChange(t, m) // only the first failure is a published change
	c.ok(10, e1, e2)
	waitChanged(t, m)
	if s := m.Sets()["web"]; s.Stale || s.Err != nil || len(s.Instances) != 2 {
		t.Fatalf("after recovery: %+v", s)
	}
	if c = f.next(t, "web"); c.opts.WaitIndex != 10 {
		t.Errorf("after recovery WaitIndex = %d, want 10", c.opts.WaitIndex)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 4 {
		t.Errorf("OnError called %d times, want 4", len(hooked))
	}
}

func TestManagerBackoffGrowsAndResets(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	m := newTestManager(t, f, Options{}, Watch{Service: "web"})
	m.timing.backoffBase = 20 * time.Millisecond
	m.timing.backoffCap = 80 * time.Millisecond
	stop := run(t, m)
	defer stop()
	c := f.next(t, "web")
	var total time.Duration
	for i := 0; i < 12; i++ {
		c.fail(errConsulDown)
		n := f.next(t, "web")
		total += n.at.Sub(c.at)
		c = n
	}
	// Full jitter over 20, 40, 80, 80, …ms: about 430ms expected in all;
	// bounded by 12 full caps (+ floors).
	if total > 12*(80+10)*time.Millisecond {
		t.Errorf("12 retries took %v, want at most ~1s (backoff capped)", total)
	}
	if total < 50*time.Millisecond {
		t.Errorf("12 retries took %v: no backoff", total)
	}
	t.Logf("12 retries took %v", total)
}

// TestUnansweredQueryIsAFailure: a blocking query that gets no answer within
// its wait time, Consul's jitter and a margin (a silent partition) is
// abandoned as a failure: the last set keeps serving, marked stale.
func TestUnansweredQueryIsAFailure(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	m := newTestManager(t, f, Options{WaitTime: 100 * time.Millisecond}, Watch{Service: "web"})
	m.timing.queryMargin = 50 * time.Millisecond
	stop := run(t, m)
	defer stop()
	f.next(t, "web").ok(10, e1, e2)
	c := f.next(t, "web") // the blocking query: never answered
	waitChanged(t, m)
	deadline := 100*time.Millisecond + 100*time.Millisecond/16 + 50*time.Millisecond
	if !c.cancelled(deadline + 2*time.Second) {
		t.Fatal("the unanswered query was not abandoned")
	}
	if waited := time.Since(c.at); waited < deadline {
		t.Errorf("abandoned after %v, before its deadline %v", waited, deadline)
	}
	waitChanged(t, m)
	if s := m.Sets()["web"]; !s.Stale || len(s.Instances) != 2 || s.Err == nil {
		t.Fatalf("after an unanswered query: %+v, want the last set, stale, with the error", s)
	}
	f.next(t, "web").ok(11, e1, e2) // the retry
}

package discovery

import (
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

// TestManagerOnUpdate checks that OnUpdate counts answers that changed the
// instances (the first one included), not unchanged answers or errors.
func TestManagerOnUpdate(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	var updates atomic.Int32
	m := newTestManager(t, f, Options{OnUpdate: func(service string) {
		if service != "web" {
			t.Errorf("OnUpdate service = %q", service)
		}
		updates.Add(1)
	}}, Watch{Service: "web"})
	stop := run(t, m)
	defer stop()

	f.next(t, "web").ok(10, e1, e2) // first answer: an update
	c := f.next(t, "web")
	drain(m)
	c.ok(11, e2, e1) // same instances
	c = f.next(t, "web")
	c.fail(errConsulDown) // an error is not an update
	c = f.next(t, "web")
	c.ok(12, e1) // changed
	waitChanged(t, m)
	f.next(t, "web")
	if got := updates.Load(); got != 2 {
		t.Errorf("OnUpdate called %d times, want 2", got)
	}
}

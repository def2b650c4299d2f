// Starting, stopping and changing watchers, and concurrent use.

package discovery

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestManagerStopCancelsInFlightQuery(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	m := newTestManager(t, f, Options{WaitTime: 10 * time.Minute}, Watch{Service: "web"})
	stop := run(t, m)
	f.next(t, "web").ok(10, e1)
	c := f.next(t, "web") // now blocked for up to 10 minutes
	start := time.Now()
	stop()
	took := time.Since(start)
	t.Logf("Run returned %v after cancel", took)
	if took > 500*time.Millisecond {
		t.Errorf("Run returned %v after cancel, want < 500ms", took)
	}
	if !c.cancelled(0) {
		t.Error("in-flight query not cancelled")
	}
	// The last set survives Run (fail static across restarts of Run).
	if s := m.Sets()["web"]; !s.Known || len(s.Instances) != 1 {
		t.Errorf("after Run: %+v", s)
	}
}

func TestManagerWatchAtRuntime(t *testing.T) {
	f, m := runWeb(t)
	f.next(t, "web").ok(10, e1)
	web := f.next(t, "web")
	drain(m)

	// Add a service: it appears unknown at once, then gets its answer.
	m.Watch([]Watch{{Service: "web"}, {Service: "api"}})
	waitChanged(t, m)
	if s := m.Sets()["api"]; s == nil || s.Known || m.Ready() {
		t.Fatalf("added service: %+v ready %v", s, m.Ready())
	}
	api := f.next(t, "api")
	api.ok(3, entry("n1", "10.0.0.1", "api-1", "", 9000))
	waitChanged(t, m)
	if !m.Ready() || len(m.Sets()["api"].Instances) != 1 {
		t.Fatalf("api after answer: %+v", m.Sets()["api"])
	}
	apiBlocked := f.next(t, "api")
	if web.cancelled(50 * time.Millisecond) {
		t.Fatal("unchanged service's query was cancelled by Watch")
	}

	// Remove a service: its in-flight query is cancelled promptly and its set is gone.
	start := time.Now()
	m.Watch([]Watch{{Service: "web"}})
	if !apiBlocked.cancelled(time.Second) {
		t.Fatal("removed service's query not cancelled")
	}
	t.Logf("removed watcher's query cancelled after %v", time.Since(start))
	waitChanged(t, m)
	if _, ok := m.Sets()["api"]; ok || len(m.Sets()) != 1 {
		t.Fatalf("Sets after removal = %v", m.Sets())
	}
	f.noCall(t, "api", 50*time.Millisecond)

	// Change the tag: the watcher restarts; the old set serves until the new answer.
	m.Watch([]Watch{{Service: "web", Tag: "canary"}})
	if !web.cancelled(time.Second) {
		t.Fatal("query with the old tag not cancelled")
	}
	c := f.next(t, "web")
	if c.tag != "canary" || c.opts.WaitIndex != 0 {
		t.Fatalf("restarted query: tag %q WaitIndex %d", c.tag, c.opts.WaitIndex)
	}
	if s := m.Sets()["web"]; !s.Known || len(s.Instances) != 1 || !m.Ready() {
		t.Fatalf("set during tag change: %+v", s)
	}
	c.ok(20, e3)
	waitChanged(t, m)
	if got, want := keys(m.Sets()["web"]), []string{"n2/web-3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("instances after tag change = %v, want %v", got, want)
	}
	f.next(t, "web")

	// Watching nothing stops everything.
	m.Watch(nil)
	if len(m.Sets()) != 0 || !m.Ready() {
		t.Fatalf("Sets after Watch(nil) = %v", m.Sets())
	}
}

func TestManagerPartialFailureStaysPartial(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	m := newTestManager(t, f, Options{}, Watch{Service: "web"}, Watch{Service: "api"})
	stop := run(t, m)
	defer stop()
	f.next(t, "web").ok(10, e1)
	f.next(t, "api").ok(10, entry("n1", "10.0.0.1", "api-1", "", 9000))

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // api fails forever
		defer wg.Done()
		for {
			select {
			case c := <-f.ch("api"):
				c.fail(errConsulDown)
			case <-done:
				return
			}
		}
	}()
	defer func() { close(done); wg.Wait() }()

	for i := 11; i < 20; i++ {
		f.next(t, "web").ok(uint64(i), e1, e2)
	}
	f.next(t, "web")
	if s := m.Sets()["web"]; s.Stale || len(s.Instances) != 2 || s.Index != 19 {
		t.Fatalf("healthy service: %+v", s)
	}
	if s := m.Sets()["api"]; !s.Stale || len(s.Instances) != 1 {
		t.Fatalf("failing service: %+v", s)
	}
}

func TestManagerRunErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	if err := New(Options{}).Run(context.Background()); err == nil {
		t.Error("Run without a HealthClient: got nil error")
	}
	f := newFakeHealth()
	m := newTestManager(t, f, Options{}, Watch{Service: "web"})
	stop := run(t, m)
	defer stop()
	f.next(t, "web") // Run has started
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.Run(ctx); err == nil || !strings.HasPrefix(err.Error(), "discovery: ") {
		t.Errorf("second concurrent Run = %v, want an error", err)
	}
}

func TestManagerRunAgainAfterReturn(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := newFakeHealth()
	m := newTestManager(t, f, Options{}, Watch{Service: "web"})
	stop := run(t, m)
	f.next(t, "web").ok(10, e1)
	f.next(t, "web")
	stop()
	m.Watch([]Watch{{Service: "web"}, {Service: "api"}}) // while not running: no goroutine
	f.noCall(t, "api", 50*time.Millisecond)
	stop = run(t, m)
	defer stop()
	if c := f.next(t, "web"); c.opts.WaitIndex != 0 {
		t.Errorf("restarted watcher WaitIndex = %d, want 0", c.opts.WaitIndex)
	}
	f.next(t, "api")
	if s := m.Sets()["web"]; !s.Known || len(s.Instances) != 1 {
		t.Errorf("web after restart of Run: %+v", s)
	}
}

// TestManagerConcurrentUse hammers Sets, Ready and Watch while watchers
// publish, for the race detector.
func TestManagerConcurrentUse(t *testing.T) {
	f, m := runWeb(t)

	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				for name, s := range m.Sets() {
					if s.Service != name {
						t.Errorf("set %q under key %q", s.Service, name)
					}
					_ = len(s.Instances)
				}
				m.Ready()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if i%2 == 0 {
				m.Watch([]Watch{{Service: "web"}, {Service: "api"}})
			} else {
				m.Watch([]Watch{{Service: "web"}})
			}
		}
	}()
	wg.Add(1)
	go func() { // answer api whenever asked
		defer wg.Done()
		for {
			select {
			case c := <-f.ch("api"):
				c.ok(1, entry("n1", "10.0.0.1", "api-1", "", 9000))
			case <-done:
				return
			}
		}
	}()
	for i := 1; i < 50; i++ {
		if i%2 == 0 {
			f.next(t, "web").ok(uint64(i), e1, e2)
		} else {
			f.next(t, "web").ok(uint64(i), e1)
		}
	}
	close(done)
	wg.Wait()
}

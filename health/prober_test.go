package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: t.Output(), Level: hclog.Debug})
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHTTPProbeFollowsBackend(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	p := NewProber(testLogger(t))
	var failures atomic.Int32
	p.OnFailure = func(string) { failures.Add(1) }
	state := &State{}
	p.Set([]Target{{
		Service: "user", Instance: "node/user-1", Address: srv.Listener.Addr().String(), Path: "/health",
		Interval: 20 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 2, UnhealthyThreshold: 2, State: state,
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	healthy.Store(false)
	waitUntil(t, "instance out of rotation", 2*time.Second, func() bool { return !state.Available() })
	if failures.Load() < 2 {
		t.Errorf("OnFailure called %d times, want at least 2", failures.Load())
	}
	healthy.Store(true)
	waitUntil(t, "instance back in rotation", 2*time.Second, state.Available)

	// Dropping the target stops its prober and forgets its verdict.
	healthy.Store(false)
	waitUntil(t, "instance out again", 2*time.Second, func() bool { return !state.Available() })
	p.Set(nil)
	if !state.Available() {
		t.Error("verdict kept after the target was removed")
	}
	cancel()
	<-done
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p := NewProber(testLogger(t))
	state := &State{}
	p.Set([]Target{{Service: "user", Instance: "i", Address: addr, Interval: 10 * time.Millisecond,
		Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 2, State: state}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	if !state.Available() {
		t.Fatal("listening instance marked down")
	}
	ln.Close()
	waitUntil(t, "closed instance marked down", 2*time.Second, func() bool { return !state.Available() })
	cancel()
	<-done
}

package discovery

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

func TestRegistrarAgainstRealConsul(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the agent's own cleanup
	agent := consultest.Start(t)
	c := agent.Client()
	r := NewRegistrar(c.Agent(), Registration{
		ID: "order-1", Name: "order", Address: "127.0.0.1", Port: 9002,
		Tags: []string{"v1"}, Meta: map[string]string{"team": "orders"},
		Check: &RegistrationCheck{TCP: "127.0.0.1:1", Interval: time.Second, Timeout: time.Second,
			DeregisterCriticalAfter: time.Minute},
	}, testLogger(t))
	r.every = 100 * time.Millisecond

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()

	waitRegistered := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			svc, _, err := c.Agent().Service("order-1", nil)
			if err == nil && svc != nil {
				if svc.Service != "order" || svc.Port != 9002 || svc.Meta["team"] != "orders" || len(svc.Tags) != 1 {
					t.Fatalf("registered %+v, want order on 9002 with tag v1 and meta team=orders", svc)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: service not registered: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRegistered("first registration")
	checks, err := c.Agent().Checks()
	if err != nil || checks["service:order-1"] == nil {
		t.Fatalf("check not registered: %v %v", checks, err)
	}

	// A restarted dev agent forgets everything: the registrar puts it back.
	agent.Stop()
	agent.Restart()
	waitRegistered("after an agent restart")

	if err := r.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	if svc, _, err := c.Agent().Service("order-1", nil); err == nil && svc != nil {
		t.Fatalf("still registered after Deregister")
	}
	cancel()
	<-done
	if err := r.Deregister(context.Background()); err != nil {
		t.Errorf("deregistering an unknown service: %v, want nil", err)
	}
}

// TestRegistrarCutOffFromAgent: with the path to a real agent silently cut
// (packets dropped, as a partition or a disconnected container network does),
// every call the registration makes ends with its context or its deadline:
// Run stops at once when cancelled in the middle of a register call, and
// Deregister gives up after callTimeout with an error that says so, instead
// of waiting until TCP gives up.
func TestRegistrarCutOffFromAgent(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the agent's and the partition's cleanup
	agent := consultest.Start(t)
	direct := agent.Client()
	p := consultest.NewPartition(t, agent.HTTPAddr)
	viaPartition, err := api.NewClient(&api.Config{Address: p.Addr})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistrar(viaPartition.Agent(), Registration{ID: "user-1", Name: "user", Address: "127.0.0.1", Port: 9001}, testLogger(t))
	r.every = 50 * time.Millisecond
	registered := func() bool {
		svc, _, err := direct.Agent().Service("user-1", nil)
		return err == nil && svc != nil
	}
	// runFor runs r until stop says so, and returns how long Run took to
	// return after its cancellation.
	runFor := func(stop func()) time.Duration {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		stop()
		cancel()
		at := time.Now()
		select {
		case <-done:
			return time.Since(at)
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10s of its cancellation: a call to the cut-off agent ignores the context")
			return 0
		}
	}

	// While the path is whole, the service is registered through it.
	runFor(func() {
		deadline := time.Now().Add(10 * time.Second)
		for !registered() {
			if time.Now().After(deadline) {
				t.Fatal("user-1 not registered through the partition while it was whole")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// Cut, a new Run begins with a register call, which cannot be
	// answered; cancelled half a second in, well before the call's own
	// deadline, Run returns at once.
	p.Cut()
	r.callTimeout = 5 * time.Second
	if took := runFor(func() { time.Sleep(500 * time.Millisecond) }); took > time.Second {
		t.Errorf("Run returned %v after its cancellation, want at once (its register call ends with the context)", took)
	}

	r.callTimeout = 300 * time.Millisecond
	start := time.Now()
	err = r.Deregister(context.Background())
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), `local service "user-1": deregister: no answer from the agent within 300ms`) {
		t.Errorf("Deregister through a cut path: %v, want an error saying the agent did not answer within 300ms", err)
	}
	if took < r.callTimeout || took > r.callTimeout+time.Second {
		t.Errorf("Deregister gave up after %v, want its deadline %v", took, r.callTimeout)
	}
	if !registered() {
		t.Error("the agent lost user-1, yet no deregistration could reach it")
	}
}

func TestRegistrationDefaults(t *testing.T) {
	r := NewRegistrar(nil, Registration{ID: "a", Name: "a", Port: 1,
		Check: &RegistrationCheck{HTTP: "http://x/health", Interval: 5 * time.Second, Timeout: 2 * time.Second}}, nil)
	got := r.registration()
	want := &api.AgentServiceCheck{HTTP: "http://x/health", Interval: "5s", Timeout: "2s"}
	if !reflect.DeepEqual(got.Check, want) {
		t.Errorf("check: got %+v, want %+v", *got.Check, *want)
	}
}

package discovery

import (
	"context"
	"reflect"
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

	if err := r.Deregister(); err != nil {
		t.Fatal(err)
	}
	if svc, _, err := c.Agent().Service("order-1", nil); err == nil && svc != nil {
		t.Fatalf("still registered after Deregister")
	}
	cancel()
	<-done
	if err := r.Deregister(); err != nil {
		t.Errorf("deregistering an unknown service: %v, want nil", err)
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

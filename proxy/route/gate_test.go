package route

import (
	"testing"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
)

// TestGateOnlyWithMaxRequests: a service without max_requests has no gate
// (a request reads nothing of it), one with it has the long-lived gate, and
// dropping the cap at a reload drops the gate.
func TestGateOnlyWithMaxRequests(t *testing.T) {
	b := NewBuilder(health.NewRegistry(), nil)
	defer b.Close()
	routes := []RouteSpec{{Name: "a", PathPrefix: "/a", Service: "a"}}
	sets := map[string]*discovery.InstanceSet{"a": reuseSet("a", []int{9})}
	if g := b.Build(routes, map[string]ServiceSpec{"a": {}}, sets).Service("a").Gate; g != nil {
		t.Errorf("no max_requests: gate %+v, want none", g)
	}
	capped := b.Build(routes, map[string]ServiceSpec{"a": {MaxRequests: 5}}, sets).Service("a")
	if capped.Gate == nil || capped.Gate.max != 5 {
		t.Fatalf("max_requests 5: gate %+v", capped.Gate)
	}
	if again := b.Build(routes, map[string]ServiceSpec{"a": {MaxRequests: 5}}, sets).Service("a"); again.Gate != capped.Gate {
		t.Error("the same max_requests at a rebuild: a new gate")
	}
	if g := b.Build(routes, map[string]ServiceSpec{"a": {}}, sets).Service("a").Gate; g != nil {
		t.Errorf("max_requests removed: gate %+v, want none", g)
	}
}

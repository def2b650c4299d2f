package discovery

import (
	"reflect"
	"testing"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
)

// entry builds a ServiceEntry for node/id with a passing node check and a
// passing service check; opts adjust it.
func entry(node, nodeAddr, id, addr string, port int, opts ...func(*api.ServiceEntry)) *api.ServiceEntry {
	e := &api.ServiceEntry{
		Node:    &api.Node{Node: node, Address: nodeAddr},
		Service: &api.AgentService{ID: id, Service: "web", Address: addr, Port: port, Weights: api.AgentWeights{Passing: 1, Warning: 1}},
		Checks: api.HealthChecks{
			{Node: node, CheckID: "serfHealth", Status: api.HealthPassing},
			{Node: node, CheckID: "service:" + id, ServiceID: id, Status: api.HealthPassing},
		},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func withCheck(c *api.HealthCheck) func(*api.ServiceEntry) {
	return func(e *api.ServiceEntry) { e.Checks = append(e.Checks, c) }
}

func TestInstanceStatus(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name string
		e    *api.ServiceEntry
		want string
	}{
		{"all passing", entry("n1", "10.0.0.1", "a", "", 80), StatusPassing},
		{"no checks", entry("n1", "10.0.0.1", "a", "", 80, func(e *api.ServiceEntry) { e.Checks = nil }), StatusPassing},
		{"service check critical", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: "http", ServiceID: "a", Status: api.HealthCritical})), StatusCritical},
		{"service check warning", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: "http", ServiceID: "a", Status: api.HealthWarning})), StatusWarning},
		{"node check critical", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: "disk", Status: api.HealthCritical})), StatusCritical},
		{"unknown status", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: "x", Status: "bogus"})), StatusCritical},
		{"node maintenance", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: api.NodeMaint, Status: api.HealthCritical})), StatusMaintenance},
		{"service maintenance", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: api.ServiceMaintPrefix + "a", ServiceID: "a", Status: api.HealthCritical})), StatusMaintenance},
		{"maintenance id even if reported passing", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: api.NodeMaint, Status: api.HealthPassing})), StatusMaintenance},
		{"another service's critical check is ignored", entry("n1", "10.0.0.1", "a", "", 80,
			withCheck(&api.HealthCheck{CheckID: "service:b", ServiceID: "b", Status: api.HealthCritical})), StatusPassing},
		{"nil check is ignored", entry("n1", "10.0.0.1", "a", "", 80, withCheck(nil)), StatusPassing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := instanceStatus(tt.e); got != tt.want {
				t.Errorf("instanceStatus = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestToInstances(t *testing.T) {
	defer goleak.VerifyNone(t)
	critical := withCheck(&api.HealthCheck{CheckID: "http", ServiceID: "x", Status: api.HealthCritical})
	tests := []struct {
		name    string
		entries []*api.ServiceEntry
		want    []Instance
	}{
		{"nil", nil, nil},
		{"empty", []*api.ServiceEntry{}, nil},
		{"service address wins", []*api.ServiceEntry{entry("n1", "10.0.0.1", "a", "192.168.1.5", 8080)},
			[]Instance{{ID: "a", Node: "n1", Address: "192.168.1.5", Port: 8080, Weight: 1, Status: "passing"}}},
		{"node address fallback", []*api.ServiceEntry{entry("n1", "10.0.0.1", "a", "", 8080)},
			[]Instance{{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 8080, Weight: 1, Status: "passing"}}},
		{"weight from passing weight", []*api.ServiceEntry{entry("n1", "10.0.0.1", "a", "", 80,
			func(e *api.ServiceEntry) { e.Service.Weights.Passing = 7; e.Service.Weights.Warning = 2 })},
			[]Instance{{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 80, Weight: 7, Status: "passing"}}},
		{"weight at least 1", []*api.ServiceEntry{entry("n1", "10.0.0.1", "a", "", 80,
			func(e *api.ServiceEntry) { e.Service.Weights = api.AgentWeights{} })},
			[]Instance{{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 80, Weight: 1, Status: "passing"}}},
		{"tags copied", []*api.ServiceEntry{entry("n1", "10.0.0.1", "a", "", 80,
			func(e *api.ServiceEntry) { e.Service.Tags = []string{"v1", "blue"} })},
			[]Instance{{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 80, Weight: 1, Tags: []string{"v1", "blue"}, Status: "passing"}}},
		{"sorted by node then id", []*api.ServiceEntry{
			entry("n2", "10.0.0.2", "a", "", 80),
			entry("n1", "10.0.0.1", "b", "", 81),
			entry("n1", "10.0.0.1", "a", "", 82),
		}, []Instance{
			{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 82, Weight: 1, Status: "passing"},
			{ID: "b", Node: "n1", Address: "10.0.0.1", Port: 81, Weight: 1, Status: "passing"},
			{ID: "a", Node: "n2", Address: "10.0.0.2", Port: 80, Weight: 1, Status: "passing"},
		}},
		{"duplicates dropped, first kept", []*api.ServiceEntry{
			entry("n1", "10.0.0.1", "a", "", 80),
			entry("n1", "10.0.0.1", "a", "", 99),
		}, []Instance{{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 80, Weight: 1, Status: "passing"}}},
		{"failing and broken entries dropped", []*api.ServiceEntry{
			nil,
			{Node: &api.Node{Node: "n9"}},
			{Service: &api.AgentService{ID: "x", Port: 80}},
			entry("n1", "10.0.0.1", "x", "", 80, critical),
			entry("n1", "", "noaddr", "", 80),
			entry("n1", "10.0.0.1", "noport", "", 0),
			entry("n1", "10.0.0.1", "badport", "", 70000),
			entry("n1", "10.0.0.1", "ok", "", 80),
		}, []Instance{{ID: "ok", Node: "n1", Address: "10.0.0.1", Port: 80, Weight: 1, Status: "passing"}}},
		{"all failing gives nil", []*api.ServiceEntry{entry("n1", "10.0.0.1", "x", "", 80, critical)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := toInstances(tt.entries, HealthPassing, "")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("toInstances =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestToInstancesSharesNoMemory(t *testing.T) {
	defer goleak.VerifyNone(t)
	e := entry("n1", "10.0.0.1", "a", "", 80, func(e *api.ServiceEntry) { e.Service.Tags = []string{"v1"} })
	got, _ := toInstances([]*api.ServiceEntry{e}, HealthPassing, "")
	e.Service.Tags[0] = "changed"
	if got[0].Tags[0] != "v1" {
		t.Errorf("tags alias the answer: got %q, want %q", got[0].Tags[0], "v1")
	}
}

func TestSameInstances(t *testing.T) {
	defer goleak.VerifyNone(t)
	a := Instance{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 80, Weight: 1, Tags: []string{"v1"}}
	mod := func(f func(*Instance)) Instance { c := a; c.Tags = []string{"v1"}; f(&c); return c }
	tests := []struct {
		name string
		x, y []Instance
		want bool
	}{
		{"both nil", nil, nil, true},
		{"nil and empty", nil, []Instance{}, true},
		{"equal", []Instance{a}, []Instance{mod(func(*Instance) {})}, true},
		{"length", []Instance{a}, nil, false},
		{"port", []Instance{a}, []Instance{mod(func(i *Instance) { i.Port = 81 })}, false},
		{"address", []Instance{a}, []Instance{mod(func(i *Instance) { i.Address = "10.0.0.2" })}, false},
		{"weight", []Instance{a}, []Instance{mod(func(i *Instance) { i.Weight = 2 })}, false},
		{"tags", []Instance{a}, []Instance{mod(func(i *Instance) { i.Tags = []string{"v2"} })}, false},
		{"id", []Instance{a}, []Instance{mod(func(i *Instance) { i.ID = "b" })}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameInstances(tt.x, tt.y); got != tt.want {
				t.Errorf("sameInstances = %v, want %v", got, tt.want)
			}
		})
	}
}

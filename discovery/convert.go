package discovery

import (
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Consul statuses of an instance, as Instance.Status has them.
const (
	StatusPassing     = "passing"
	StatusWarning     = "warning"
	StatusCritical    = "critical"
	StatusMaintenance = "maintenance"
)

// Health policies, as Watch.Health has them: which Consul statuses route.
const (
	// HealthPassing routes instances whose every check passes (the default).
	HealthPassing = "passing"
	// HealthWarning also routes instances with warning checks (and none
	// critical), as Traefik's and Consul DNS's "only passing = false" do.
	HealthWarning = "warning"
)

// toInstances converts Consul's answer (every instance, passingOnly=false)
// into all, every dialable instance with its status, and routable, those the
// health policy lets traffic reach. Both are sorted by Key, one per Key (the
// first seen), tagged with dc. It copies everything it keeps, so the result
// shares no memory with the answer; an empty list is nil.
func toInstances(entries []*api.ServiceEntry, policy, dc string) (routable, all []Instance) {
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		in, ok := toInstance(e, dc)
		if !ok || seen[in.Key()] {
			continue
		}
		seen[in.Key()] = true
		all = append(all, in)
	}
	slices.SortFunc(all, func(a, b Instance) int { return strings.Compare(a.Key(), b.Key()) })
	for _, in := range all {
		if routes(in.Status, policy) {
			routable = append(routable, in)
		}
	}
	return routable, all
}

// routes reports whether an instance with Consul status st takes traffic
// under policy.
func routes(st, policy string) bool {
	return st == StatusPassing || (st == StatusWarning && policy == HealthWarning)
}

// toInstance converts one entry, reporting false for one that cannot be
// dialled (no address, or a port outside 1–65535).
func toInstance(e *api.ServiceEntry, dc string) (Instance, bool) {
	if e == nil || e.Service == nil || e.Node == nil {
		return Instance{}, false
	}
	s := e.Service
	st := instanceStatus(e)
	w := s.Weights.Passing
	if st == StatusWarning {
		w = s.Weights.Warning // Consul's weight for an instance in warning
	}
	in := Instance{
		ID:         s.ID,
		Node:       e.Node.Node,
		Address:    s.Address,
		Port:       s.Port,
		Weight:     max(w, 1),
		Tags:       slices.Clone(s.Tags),
		Status:     st,
		Datacenter: e.Node.Datacenter,
	}
	if in.Datacenter == "" {
		in.Datacenter = dc
	}
	if in.ID == "" {
		in.ID = s.Service // Consul defaults the ID to the name
	}
	if in.Address == "" {
		in.Address = e.Node.Address
	}
	if in.Address == "" || in.Port <= 0 || in.Port > 65535 {
		return Instance{}, false
	}
	return in, true
}

// instanceStatus is the aggregate Consul status of an instance: maintenance
// when the node or the service is in maintenance mode (Consul's
// _node_maintenance / _service_maintenance:ID checks, recognised by ID
// whatever status they report), else the worst status of the instance's and
// its node's checks (an unknown status counts as critical). Checks of other
// services on the node are ignored. An instance without checks passes, as it
// does in Consul.
func instanceStatus(e *api.ServiceEntry) string {
	worst := StatusPassing
	for _, c := range e.Checks {
		if c == nil {
			continue
		}
		if c.ServiceID != "" && e.Service != nil && c.ServiceID != e.Service.ID {
			continue
		}
		if c.CheckID == api.NodeMaint || strings.HasPrefix(c.CheckID, api.ServiceMaintPrefix) {
			return StatusMaintenance
		}
		switch c.Status {
		case api.HealthPassing:
		case api.HealthWarning:
			if worst == StatusPassing {
				worst = StatusWarning
			}
		default:
			worst = StatusCritical
		}
	}
	return worst
}

// sameInstances reports whether two sorted instance lists are equal, tags,
// status and datacenter included.
func sameInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, func(x, y Instance) bool {
		return x.ID == y.ID && x.Node == y.Node && x.Address == y.Address &&
			x.Port == y.Port && x.Weight == y.Weight && slices.Equal(x.Tags, y.Tags) &&
			x.Status == y.Status && x.Datacenter == y.Datacenter
	})
}

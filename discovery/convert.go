package discovery

import (
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
)

// toInstances converts Consul's answer into instances: passing ones only,
// each with an address and a port, sorted by Key, one per Key (the first
// seen). It copies everything it keeps, so the result shares no memory with
// the answer. It returns nil for no instance.
func toInstances(entries []*api.ServiceEntry) []Instance {
	var out []Instance
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		in, ok := toInstance(e)
		if !ok || seen[in.Key()] {
			continue
		}
		seen[in.Key()] = true
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// toInstance converts one entry, reporting false for an entry that is not
// passing or cannot be dialled (no address, or a port outside 1–65535).
func toInstance(e *api.ServiceEntry) (Instance, bool) {
	if e == nil || e.Service == nil || e.Node == nil || !passing(e) {
		return Instance{}, false
	}
	s := e.Service
	in := Instance{
		ID:      s.ID,
		Node:    e.Node.Node,
		Address: s.Address,
		Port:    s.Port,
		Weight:  max(s.Weights.Passing, 1),
		Tags:    slices.Clone(s.Tags),
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

// passing reports whether every check of the instance and of its node passes.
// Maintenance mode (node or service) is a critical check in Consul; it is
// also recognised by its check ID, so it never passes. Checks of other
// services on the node are ignored. An instance without checks passes, as it
// does in Consul.
func passing(e *api.ServiceEntry) bool {
	for _, c := range e.Checks {
		if c == nil {
			continue
		}
		if c.ServiceID != "" && e.Service != nil && c.ServiceID != e.Service.ID {
			continue
		}
		if c.CheckID == api.NodeMaint || strings.HasPrefix(c.CheckID, api.ServiceMaintPrefix) {
			return false
		}
		if c.Status != api.HealthPassing {
			return false
		}
	}
	return true
}

// sameInstances reports whether two sorted instance lists are equal, tags
// included.
func sameInstances(a, b []Instance) bool {
	return slices.EqualFunc(a, b, func(x, y Instance) bool {
		return x.ID == y.ID && x.Node == y.Node && x.Address == y.Address &&
			x.Port == y.Port && x.Weight == y.Weight && slices.Equal(x.Tags, y.Tags)
	})
}

package discovery

import (
	"net"
	"strconv"
	"time"
)

// Instance is one passing instance of a Consul service. Instances are values;
// slices of them inside a published InstanceSet are never modified.
type Instance struct {
	ID      string // Consul service ID (unique per node)
	Node    string
	Address string // the service address, else the node address
	Port    int
	Weight  int // Consul's passing weight, at least 1
	Tags    []string
}

// Key identifies the instance across snapshots: node and service ID.
func (i Instance) Key() string { return i.Node + "/" + i.ID }

// HostPort is the instance's dialable address.
func (i Instance) HostPort() string {
	return net.JoinHostPort(i.Address, strconv.Itoa(i.Port))
}

// InstanceSet is the published state of one watched service. It is immutable
// once published and safe for concurrent use.
type InstanceSet struct {
	Service   string
	Instances []Instance // sorted by Key
	// Known is false until Consul has answered for this service once.
	Known bool
	// Index is the X-Consul-Index of the last answer.
	Index uint64
	// LastContact is when Consul last answered a query for this service.
	LastContact time.Time
	// Stale is true while the last query failed and the set is the last known one.
	Stale bool
	// Err is the last query error while Stale, else nil.
	Err error
}

package discovery

import (
	"net"
	"strconv"
	"time"
)

// Instance is one registered instance of a Consul service. Instances are
// values; slices of them inside a published InstanceSet are never modified.
type Instance struct {
	ID      string // Consul service ID (unique per node)
	Node    string
	Address string // the service address, else the node address
	Port    int
	Weight  int // Consul's passing weight (warning weight while in warning), at least 1
	Tags    []string
	// Status is Consul's view: StatusPassing, StatusWarning, StatusCritical
	// or StatusMaintenance.
	Status string
	// Datacenter the instance was read from ("" when not known).
	Datacenter string
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
	Service string
	// Instances are the routable instances (those the watch's health
	// policy allows), sorted by Key.
	Instances []Instance
	// All is every registered, dialable instance with its Consul status,
	// routable or not, sorted by Key; for display.
	All []Instance
	// Datacenter the routable instances came from: the local one (as
	// Consul reports it; "" before any answer), or a failover datacenter.
	Datacenter string
	// FailedOver is true while the local datacenter has no routable
	// instance and Instances come from Datacenter, a failover one.
	FailedOver bool
	// FromSnapshot is true while the set was read from the snapshot file
	// and Consul has not answered since.
	FromSnapshot bool
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

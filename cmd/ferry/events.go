package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// Recent state changes, for the status page and GET /v1/events: instances
// joining or leaving discovery's set, ejections, active checks failing and
// passing again, drains, reloads. The newest maxEvents are kept in memory.

const maxEvents = 200

// event is one state change.
type event struct {
	Time     time.Time `json:"time"`
	Service  string    `json:"service,omitempty"`
	Instance string    `json:"instance,omitempty"` // the Consul service ID
	Event    string    `json:"event"`              // joined | left | ejected | check_failing | check_passing | drained | undrained | reloaded | reload_failed
	Reason   string    `json:"reason,omitempty"`
}

// instanceSeen is what the last observation of an instance's state found.
// The zero value is a new instance's state: never ejected, checks passing.
type instanceSeen struct {
	ejectedAt   time.Time
	activeSince time.Time
	pass        uint64
}

// eventLog keeps the recent events and what it last saw of each instance.
// Safe for concurrent use.
type eventLog struct {
	mu     sync.Mutex
	ring   [maxEvents]event
	n      int
	pass   uint64
	seen   map[[2]string]*instanceSeen       // service, instance key
	member map[string]map[string]*memberSeen // service → memberKey → what its last set said
}

// memberSeen is what a service's last set said of one registered instance.
type memberSeen struct {
	id, address, datacenter string
	routable                bool
	// outSince is when the instance left routing (or was registered
	// outside it) while ferry watched; zero while routable, or when it was
	// already out at ferry's first answer.
	outSince time.Time
}

// memberKey names an instance across datacenters: a failover datacenter
// may have an instance with the same node and ID.
func memberKey(inst discovery.Instance) string { return inst.Datacenter + "/" + inst.Key() }

func newEventLog() *eventLog {
	return &eventLog{seen: make(map[[2]string]*instanceSeen), member: make(map[string]map[string]*memberSeen)}
}

func (l *eventLog) add(e event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLocked(e)
}

func (l *eventLog) addLocked(e event) {
	l.ring[l.n%maxEvents] = e
	l.n++
}

// recent returns the events, newest first.
func (l *eventLog) recent() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := min(l.n, maxEvents)
	out := make([]event, 0, k)
	for i := 1; i <= k; i++ {
		out = append(out, l.ring[(l.n-i)%maxEvents])
	}
	return out
}

// observe compares each instance's health state in t with what the last
// call saw and records ejections and active-check changes, at the time the
// state recorded for them.
func (l *eventLog) observe(t *route.Table) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pass++
	for _, svc := range t.Services() {
		for _, up := range svc.Upstreams() {
			st := up.State()
			if st == nil {
				continue
			}
			inst := up.Instance()
			k := [2]string{svc.Name(), inst.Key()}
			at, refused := st.LastEjection()
			cur := instanceSeen{ejectedAt: at, activeSince: st.ActiveSince(), pass: l.pass}
			prev := l.seen[k]
			l.seen[k] = &cur
			if prev == nil {
				// First sight: compare with a new instance's state, since
				// the state was created when the instance appeared.
				prev = &instanceSeen{}
			}
			if !cur.ejectedAt.Equal(prev.ejectedAt) {
				l.addLocked(event{Time: at, Service: svc.Name(), Instance: inst.ID, Event: "ejected",
					Reason: ejectReason(refused, svc.Spec().Outlier.ConsecutiveFailures)})
			}
			if !cur.activeSince.Equal(prev.activeSince) {
				e := event{Time: cur.activeSince, Service: svc.Name(), Instance: inst.ID, Event: "check_passing"}
				if !st.ActiveHealthy() {
					e.Event, e.Reason = "check_failing", st.CheckError()
				}
				l.addLocked(e)
			}
		}
	}
	for k, s := range l.seen {
		if s.pass != l.pass {
			delete(l.seen, k)
		}
	}
}

func ejectReason(refused bool, consecutive int) string {
	if refused {
		return "connection refused"
	}
	return fmt.Sprintf("%d consecutive failures", consecutive)
}

// membership logs and records the instances that joined or left each
// service's routable set since the last call, with the reason: Consul's
// status for an instance still registered ("Consul: critical"), else
// "deregistered"; a join says "registered" for a new instance, "Consul:
// passing" for one whose checks recovered. A service's first answer is one
// line (how many instances it has), its instances logged at debug level, so
// that a start with many services does not flood the log.
func (l *eventLog) membership(log hclog.Logger, sets map[string]*discovery.InstanceSet, now time.Time) {
	names := make([]string, 0, len(sets))
	for name := range sets {
		names = append(names, name)
	}
	l.mu.Lock()
	for name := range l.member {
		if _, ok := sets[name]; !ok {
			names = append(names, name)
		}
	}
	l.mu.Unlock()
	l.membershipOf(log, sets, names, now)
}

// membershipOf is membership for the services named only: the others' sets
// did not change since the last call.
func (l *eventLog) membershipOf(log hclog.Logger, sets map[string]*discovery.InstanceSet, names []string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, name := range names {
		set, ok := sets[name]
		if !ok {
			delete(l.member, name) // no longer watched: not "left"
			continue
		}
		if !set.Known {
			continue
		}
		l.member[name] = l.compareMembers(log, name, set, now)
	}
}

// compareMembers logs and records what changed in one service's set and
// returns what it says of each instance.
func (l *eventLog) compareMembers(log hclog.Logger, name string, set *discovery.InstanceSet, now time.Time) map[string]*memberSeen {
	prev, had := l.member[name]
	routable := make(map[string]bool, len(set.Instances))
	for _, inst := range set.Instances {
		routable[memberKey(inst)] = true
	}
	cur := make(map[string]*memberSeen, max(len(set.All), len(set.Instances)))
	visit := func(inst discovery.Instance) {
		k := memberKey(inst)
		if cur[k] != nil {
			return
		}
		m := &memberSeen{id: inst.ID, address: inst.HostPort(), datacenter: inst.Datacenter, routable: routable[k]}
		cur[k] = m
		p := prev[k]
		switch {
		case m.routable && p != nil && p.routable:
		case m.routable && !had:
			log.Debug("instance joined", "service", name, "instance_id", inst.ID, "address", m.address)
		case m.routable:
			reason := "registered"
			if p != nil {
				reason = "Consul: " + consulStatus(inst)
			} else if set.FailedOver && inst.Datacenter == set.Datacenter {
				reason = "failed over to datacenter " + inst.Datacenter
			}
			log.Info("instance joined", "service", name, "instance_id", inst.ID, "address", m.address, "reason", reason)
			l.addLocked(event{Time: now, Service: name, Instance: inst.ID, Event: "joined", Reason: reason})
		case p != nil && p.routable:
			m.outSince = now
			reason := "Consul: " + consulStatus(inst)
			log.Info("instance left", "service", name, "instance_id", inst.ID, "address", m.address, "reason", reason)
			l.addLocked(event{Time: now, Service: name, Instance: inst.ID, Event: "left", Reason: reason})
		case p != nil:
			m.outSince = p.outSince
		case had:
			m.outSince = now // registered outside routing (its checks not passing yet)
		}
	}
	for _, inst := range set.All {
		visit(inst)
	}
	for _, inst := range set.Instances { // a set from an old snapshot has no All
		visit(inst)
	}
	if !had {
		log.Info("first instances from Consul", "service", name, "instances", len(routable), "registered", len(cur))
	}
	for k, p := range prev {
		if cur[k] != nil || !p.routable {
			continue
		}
		reason := "deregistered"
		if p.datacenter != "" && p.datacenter != set.Datacenter && !set.FailedOver {
			reason = "failover ended"
		}
		log.Info("instance left", "service", name, "instance_id", p.id, "address", p.address, "reason", reason)
		l.addLocked(event{Time: now, Service: name, Instance: p.id, Event: "left", Reason: reason})
	}
	return cur
}

// notRoutedSince is when the instance of service left routing, zero when
// it is routable or ferry has not seen it leave.
func (l *eventLog) notRoutedSince(service string, inst discovery.Instance) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := l.member[service][memberKey(inst)]; m != nil && !m.routable {
		return m.outSince
	}
	return time.Time{}
}

func consulStatus(inst discovery.Instance) string {
	if inst.Status == "" {
		return discovery.StatusPassing // a set from an old snapshot: routable ones only
	}
	return inst.Status
}

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
	seen   map[[2]string]*instanceSeen  // service, instance key
	member map[string]map[string]string // service → instance key → ID, of its last set
}

func newEventLog() *eventLog {
	return &eventLog{seen: make(map[[2]string]*instanceSeen), member: make(map[string]map[string]string)}
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
// service's set since the last call. A service's first answer is one line
// (how many instances it has), its instances logged at debug level, so that
// a start with many services does not flood the log.
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
		prev, had := l.member[name]
		cur := make(map[string]string, len(set.Instances))
		for _, inst := range set.Instances {
			k := inst.Key()
			cur[k] = inst.ID
			if _, ok := prev[k]; ok {
				continue
			}
			if !had {
				log.Debug("instance joined", "service", name, "instance_id", inst.ID, "address", inst.HostPort())
				continue
			}
			log.Info("instance joined", "service", name, "instance_id", inst.ID, "address", inst.HostPort())
			l.addLocked(event{Time: now, Service: name, Instance: inst.ID, Event: "joined"})
		}
		if !had {
			log.Info("first instances from Consul", "service", name, "instances", len(cur))
		}
		for k, id := range prev {
			if _, ok := cur[k]; !ok {
				log.Info("instance left", "service", name, "instance_id", id)
				l.addLocked(event{Time: now, Service: name, Instance: id, Event: "left"})
			}
		}
		l.member[name] = cur
	}
}

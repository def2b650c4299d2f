package main

import (
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// What follows a table rebuild — the prober's targets, panic modes,
// forgotten instances, membership events, failover datacenters — used to
// walk every service and instance on every discovery change: at a thousand
// services, as much CPU as the table itself (docs/benchmarks.md, issue 13).
// rebuildState remembers what the last rebuild applied so that the next
// redoes only the services whose table entry or instance set changed. A
// new configuration (a reload) redoes everything, as before.

// rebuildState is what the last rebuild applied. Only rebuild uses it
// (under buildMu).
type rebuildState struct {
	cfg   *config.Config // nil before the first rebuild
	table *route.Table
	sets  map[string]*discovery.InstanceSet
	// targets are the prober's targets by service, and all their
	// concatenation as last given to the prober.
	targets map[string][]health.Target
	// probed is the list the prober was last given.
	probed []health.Target
	// failover is what the access log was last told (failoverDatacenters).
	failover map[string]map[string]string
}

// rebuildDelta is what changed since the last rebuild.
type rebuildDelta struct {
	full     bool     // a new configuration or the first rebuild: redo everything
	services []string // services whose table entry changed, or that left the table
	sets     []string // services whose instance set changed, or that are no longer watched
}

// delta compares the new table and sets with the last applied ones.
func (s *rebuildState) delta(cfg *config.Config, table *route.Table, sets map[string]*discovery.InstanceSet) rebuildDelta {
	if s.cfg != cfg || s.table == nil {
		return rebuildDelta{full: true}
	}
	d := rebuildDelta{services: route.ChangedServices(s.table, table)}
	for name, set := range sets {
		if s.sets[name] != set {
			d.sets = append(d.sets, name)
		}
	}
	for name := range s.sets {
		if _, ok := sets[name]; !ok {
			d.sets = append(d.sets, name)
		}
	}
	return d
}

// applyRebuilt brings everything that follows the routing table up to
// date with it, and with sets, redoing only what d names.
func (a *app) applyRebuilt(cfg *config.Config, table *route.Table, sets map[string]*discovery.InstanceSet) {
	s := &a.lc.rebuilt
	d := s.delta(cfg, table, sets)
	prevSets := s.sets
	s.cfg, s.table, s.sets = cfg, table, sets
	if d.full {
		s.targets = probeTargetsByService(cfg, table, a.registry)
		a.setProbeTargets()
		a.applyPanic(cfg, table, nil) // health.go
		a.setFailoverDatacenters(sets)
		forgetGoneInstances(a.registry, sets)
		a.events.membership(a.logger.Named("discovery"), sets, time.Now()) // events.go
		return
	}
	if len(d.services) > 0 {
		if updateTargets(s.targets, cfg, table, a.registry, d.services) {
			a.setProbeTargets()
		}
		a.applyPanic(cfg, table, d.services)
	}
	if len(d.sets) == 0 {
		return
	}
	failover := false
	for _, name := range d.sets {
		if old := prevSets[name]; old != nil && old.FailedOver {
			failover = true
		}
		if cur := sets[name]; cur != nil && cur.FailedOver {
			failover = true
		}
	}
	if failover {
		a.setFailoverDatacenters(sets)
	}
	forgetGoneInstancesOf(a.registry, sets, d.sets)
	a.events.membershipOf(a.logger.Named("discovery"), sets, d.sets, time.Now())
}

// probeTargetsByService returns the prober's targets of every service of
// table, by service.
func probeTargetsByService(cfg *config.Config, table *route.Table, reg *health.Registry) map[string][]health.Target {
	out := make(map[string][]health.Target)
	for _, svc := range table.Services() {
		if ts := serviceTargets(cfg, svc, reg); len(ts) > 0 {
			out[svc.Name()] = ts
		}
	}
	return out
}

// updateTargets lists anew in by the targets of the services named. It
// reports whether any of them has targets before or after: the prober must
// then be given the new list (a rebuilt service's targets may have new
// addresses or states even when as many).
func updateTargets(by map[string][]health.Target, cfg *config.Config, table *route.Table, reg *health.Registry, names []string) bool {
	touched := false
	for _, name := range names {
		var ts []health.Target
		if svc := table.Service(name); svc != nil {
			ts = serviceTargets(cfg, svc, reg)
		}
		touched = touched || len(ts) > 0 || len(by[name]) > 0
		if len(ts) == 0 {
			delete(by, name)
		} else {
			by[name] = ts
		}
	}
	return touched
}

// setProbeTargets gives the prober every service's targets.
func (a *app) setProbeTargets() {
	s := &a.lc.rebuilt
	s.probed = s.probed[:0:0] // the prober may keep the slice it was given
	for _, ts := range s.targets {
		s.probed = append(s.probed, ts...)
	}
	a.prober.Set(s.probed)
}

// setFailoverDatacenters tells the access log which instances come from a
// failover datacenter.
func (a *app) setFailoverDatacenters(sets map[string]*discovery.InstanceSet) {
	a.lc.rebuilt.failover = failoverDatacenters(sets)
	accesslog.SetFailoverDatacenters(a.accessLog, a.lc.rebuilt.failover)
}

// forgetGoneInstancesOf is forgetGoneInstances for the services named only:
// the health state of their instances no longer in their set is dropped.
func forgetGoneInstancesOf(reg *health.Registry, sets map[string]*discovery.InstanceSet, names []string) {
	if len(names) == 0 {
		return
	}
	known := make(map[string]map[string]bool, len(names))
	for _, name := range names {
		keys := make(map[string]bool)
		if set := sets[name]; set != nil {
			for _, inst := range set.Instances {
				keys[inst.Key()] = true
			}
		}
		known[name] = keys
	}
	reg.Retain(func(service, instance string) bool {
		keys, named := known[service]
		return !named || keys[instance]
	})
}

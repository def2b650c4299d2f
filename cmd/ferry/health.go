package main

import (
	"context"
	"time"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// serviceTargets lists the instances of svc ferry must check itself: every
// instance of a service with a health_check block, and — while Consul cannot
// be reached for a service without one — every instance of it with a TCP
// connect probe, so that the last known set stays governed by someone.
func serviceTargets(cfg *config.Config, svc *route.Service, reg *health.Registry) []health.Target {
	conf := cfg.Services[svc.Name()]
	var hc *config.HealthCheck
	if conf != nil {
		hc = conf.HealthCheck
	}
	if hc == nil && !svc.Stale() {
		return nil
	}
	var out []health.Target
	for _, up := range svc.Upstreams() {
		inst := up.Instance()
		t := health.Target{
			Service:            svc.Name(),
			Instance:           inst.Key(),
			Address:            up.Addr(),
			Interval:           health.FallbackInterval,
			Timeout:            health.FallbackTimeout,
			HealthyThreshold:   health.FallbackHealthyThreshold,
			UnhealthyThreshold: health.FallbackUnhealthyThreshold,
			State:              reg.State(svc.Name(), inst.Key()),
		}
		if hc != nil {
			t.Path = hc.Path
			t.Interval, t.Timeout = hc.Interval, hc.Timeout
			t.HealthyThreshold, t.UnhealthyThreshold = hc.HealthyThreshold, hc.UnhealthyThreshold
		}
		out = append(out, t)
	}
	return out
}

// forgetGoneInstances drops the health state of instances that are in no
// published set any more, so that the registry does not grow with every
// deploy. State of instances still known (even stale) is kept.
func forgetGoneInstances(reg *health.Registry, sets map[string]*discovery.InstanceSet) {
	known := make(map[[2]string]bool)
	for name, set := range sets {
		for _, inst := range set.Instances {
			known[[2]string{name, inst.Key()}] = true
		}
	}
	reg.Retain(func(service, instance string) bool { return known[[2]string{service, instance}] })
}

// applyPanic gives each routed service's panic mode its threshold and the
// states of the table's (routable) instances; with names, only those
// services' (the others' table entries did not change). Transitions are
// logged and counted.
func (a *app) applyPanic(cfg *config.Config, table *route.Table, names []string) {
	if names == nil {
		for _, svc := range table.Services() {
			a.applyPanicOf(cfg, svc)
		}
		return
	}
	for _, name := range names {
		if svc := table.Service(name); svc != nil {
			a.applyPanicOf(cfg, svc)
		}
	}
}

func (a *app) applyPanicOf(cfg *config.Config, svc *route.Service) {
	name := svc.Name()
	threshold := 0
	if c := cfg.Services[name]; c != nil {
		threshold = c.PanicThreshold
	}
	members := make([]*health.State, 0, len(svc.Upstreams()))
	for _, up := range svc.Upstreams() {
		if st := up.State(); st != nil {
			members = append(members, st)
		}
	}
	log := a.logger.Named("health").With("service", name)
	a.registry.Panic(name).Set(threshold, members, func(on bool, healthy, total int) {
		if on {
			log.Warn("panic mode: too few instances pass ferry's own checks; routing to every Consul-routable instance",
				"healthy", healthy, "instances", total, "panic_threshold", threshold)
		} else {
			log.Info("panic mode over: enough instances pass ferry's own checks again", "healthy", healthy, "instances", total)
		}
		if a.metrics != nil {
			a.metrics.panicChange(name, on)
		}
	})
}

// panicEvery is how often panic modes are re-evaluated for ejections that
// expired (every other change re-evaluates at once).
const panicEvery = time.Second

// panicLoop re-evaluates every routed service's panic mode until ctx is done.
func (a *app) panicLoop(ctx context.Context) {
	every(ctx, panicEvery, func() {
		for _, svc := range a.handler.Table().Services() {
			a.registry.Panic(svc.Name()).Evaluate()
		}
	})
}

// every runs fn every d until ctx is done.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

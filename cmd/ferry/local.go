package main

import (
	"context"
	"sync"
	"time"

	"github.com/ferry-proxy/ferry/discovery"
)

// startLocalService registers the application ferry sits beside (the
// local_service block) and keeps it registered. The returned leave function,
// safe to call more than once, stops that, deregisters the service and waits
// deregister_delay, so that other proxies stop sending to the application
// before this ferry drains and exits. Without a local_service it does nothing.
//
// Every call to the agent is bounded (discovery.AgentCallTimeout), so leave
// returns within that plus deregister_delay even when Consul cannot be
// reached: a sidecar cut off from Consul still drains and exits 0 within its
// stop grace period instead of being killed.
func (a *app) startLocalService() (leave func()) {
	ls := a.cfg.LocalService
	if ls == nil {
		return func() {}
	}
	reg := discovery.Registration{
		ID: ls.ID, Name: ls.Name, Address: ls.Address, Port: ls.Port, Tags: ls.Tags, Meta: ls.Meta,
	}
	if c := ls.Check; c != nil {
		reg.Check = &discovery.RegistrationCheck{
			HTTP: c.HTTP, TCP: c.TCP, Interval: c.Interval, Timeout: c.Timeout,
			DeregisterCriticalAfter: c.DeregisterCriticalAfter,
		}
	}
	r := discovery.NewRegistrar(a.consul.Agent(), reg, a.logger.Named("local_service"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done // the registrar must not register the service again
			if err := r.Deregister(context.Background()); err != nil {
				// The delay is waited all the same: a call that timed out
				// may have reached the agent, and then other proxies need
				// it as much as after a success.
				a.logger.Warn("cannot deregister the local service; unless the attempt reached Consul, it stays listed until its check fails",
					"service", ls.Name, "instance_id", ls.ID, "error", err)
			}
			if ls.DeregisterDelay > 0 {
				a.logger.Info("waiting for other proxies to stop sending to the local service", "delay", ls.DeregisterDelay.String())
				time.Sleep(ls.DeregisterDelay)
			}
		})
	}
}

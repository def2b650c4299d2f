package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// AgentClient is what registration needs of Consul's local agent;
// *api.Agent satisfies it. Implementations must be safe for concurrent use.
type AgentClient interface {
	ServiceRegister(*api.AgentServiceRegistration) error
	ServiceDeregister(serviceID string) error
	Service(serviceID string, q *api.QueryOptions) (*api.AgentService, *api.QueryMeta, error)
}

// Registration is the local service a sidecar registers (SPEC §10).
type Registration struct {
	ID      string
	Name    string
	Address string // "" lets Consul use the agent's node address
	Port    int
	Tags    []string
	Meta    map[string]string
	Check   *RegistrationCheck // nil registers no check
}

// RegistrationCheck is the Consul check registered with the service: an HTTP
// URL or a TCP address.
type RegistrationCheck struct {
	HTTP, TCP               string
	Interval, Timeout       time.Duration
	DeregisterCriticalAfter time.Duration // 0: never
}

// Registrar keeps the local service registered in the local agent: it
// registers it, checks every few seconds that the agent still knows it (an
// agent restart forgets services registered through the API) and registers
// it again when not. It is safe for concurrent use.
type Registrar struct {
	agent AgentClient
	reg   Registration
	log   hclog.Logger
	// every is how often the agent is asked whether it still has the service.
	every time.Duration
}

// registrarInterval is how often the registration is verified: an agent
// restart costs the service at most this long (plus its first check) in
// Consul's passing set.
const registrarInterval = 2 * time.Second

// NewRegistrar returns a Registrar for reg; nothing is sent before Run.
func NewRegistrar(agent AgentClient, reg Registration, logger hclog.Logger) *Registrar {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Registrar{agent: agent, reg: reg, every: registrarInterval,
		log: logger.With("service", reg.Name, "instance_id", reg.ID)}
}

// Run registers the service and keeps it registered until ctx is done. It
// does not deregister: shutdown orders that itself (Deregister, a delay, the
// drain). It returns once its loop has exited.
func (r *Registrar) Run(ctx context.Context) error {
	registered := false
	failures := 0
	for {
		err := r.ensure(ctx, &registered)
		wait := r.every/2 + rand.N(r.every) // jittered around every
		if err != nil && ctx.Err() == nil {
			if failures == 0 {
				r.log.Warn("cannot register the local service; retrying", "error", err)
			}
			failures++
			wait = max(backoff(failures, 250*time.Millisecond, r.every, rand.Float64()), 50*time.Millisecond)
			registered = false
		} else if failures > 0 && err == nil {
			r.log.Info("local service registered again after errors")
			failures = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// ensure registers the service unless the agent already has it.
func (r *Registrar) ensure(ctx context.Context, registered *bool) error {
	if *registered {
		rctx, cancel := defaultTiming.bound(ctx, 0)
		svc, _, err := r.agent.Service(r.reg.ID, (&api.QueryOptions{}).WithContext(rctx))
		cancel()
		if err == nil && svc != nil {
			return nil
		}
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("discovery: local service %q: agent lookup: %w", r.reg.ID, err)
		}
		r.log.Warn("the agent forgot the local service (restarted?); registering it again")
	}
	if err := r.agent.ServiceRegister(r.registration()); err != nil {
		return fmt.Errorf("discovery: local service %q: register: %w", r.reg.ID, err)
	}
	if !*registered {
		r.log.Info("registered the local service in Consul", "address", r.reg.Address, "port", r.reg.Port)
	}
	*registered = true
	return nil
}

// Deregister removes the service from the agent, so that other proxies stop
// sending to it. A service the agent does not have is not an error.
func (r *Registrar) Deregister() error {
	if err := r.agent.ServiceDeregister(r.reg.ID); err != nil && !isNotFound(err) {
		return fmt.Errorf("discovery: local service %q: deregister: %w", r.reg.ID, err)
	}
	r.log.Info("deregistered the local service from Consul")
	return nil
}

func (r *Registrar) registration() *api.AgentServiceRegistration {
	reg := &api.AgentServiceRegistration{
		ID: r.reg.ID, Name: r.reg.Name, Address: r.reg.Address, Port: r.reg.Port,
		Tags: r.reg.Tags, Meta: r.reg.Meta,
	}
	if c := r.reg.Check; c != nil {
		reg.Check = &api.AgentServiceCheck{
			HTTP:     c.HTTP,
			TCP:      c.TCP,
			Interval: c.Interval.String(),
			Timeout:  c.Timeout.String(),
		}
		if c.DeregisterCriticalAfter > 0 {
			reg.Check.DeregisterCriticalServiceAfter = c.DeregisterCriticalAfter.String()
		}
	}
	return reg
}

// isNotFound reports whether the agent answered 404 (unknown service).
func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == 404
}

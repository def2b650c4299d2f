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
// *api.Agent satisfies it. Every call takes a context (in its options), so
// that each one can be given a deadline. Implementations must be safe for
// concurrent use.
type AgentClient interface {
	ServiceRegisterOpts(*api.AgentServiceRegistration, api.ServiceRegisterOpts) error
	ServiceDeregisterOpts(serviceID string, q *api.QueryOptions) error
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
	// callTimeout bounds each call to the agent (see AgentCallTimeout).
	callTimeout time.Duration
}

// registrarInterval is how often the registration is verified: an agent
// restart costs the service at most this long (plus its first check) in
// Consul's passing set.
const registrarInterval = 2 * time.Second

// AgentCallTimeout bounds every call the registration makes to the agent
// (look-up, register, deregister). The agent is local and answers these at
// once; on a path that silently drops packets (a partition, a disconnected
// container network) a call would otherwise hang until TCP gives up, minutes
// later — long past a container's stop grace period, so a sidecar stopped
// while cut off would be killed instead of draining. With this bound a
// shutdown costs at most AgentCallTimeout + deregister_delay + the drain.
const AgentCallTimeout = 5 * time.Second

// NewRegistrar returns a Registrar for reg; nothing is sent before Run.
func NewRegistrar(agent AgentClient, reg Registration, logger hclog.Logger) *Registrar {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Registrar{agent: agent, reg: reg, every: registrarInterval, callTimeout: AgentCallTimeout,
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

// ensure registers the service unless the agent already has it. Each call
// ends with ctx or after callTimeout, whichever comes first.
func (r *Registrar) ensure(ctx context.Context, registered *bool) error {
	if *registered {
		cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
		svc, _, err := r.agent.Service(r.reg.ID, (&api.QueryOptions{}).WithContext(cctx))
		cancel()
		if err == nil && svc != nil {
			return nil
		}
		if err != nil && !isNotFound(err) {
			return r.callError(cctx, "agent lookup", err)
		}
		r.log.Warn("the agent forgot the local service (restarted?); registering it again")
	}
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	err := r.agent.ServiceRegisterOpts(r.registration(), api.ServiceRegisterOpts{}.WithContext(cctx))
	cancel()
	if err != nil {
		return r.callError(cctx, "register", err)
	}
	if !*registered {
		r.log.Info("registered the local service in Consul", "address", r.reg.Address, "port", r.reg.Port)
	}
	*registered = true
	return nil
}

// Deregister removes the service from the agent, so that other proxies stop
// sending to it. A service the agent does not have is not an error. It gives
// up when ctx ends or after AgentCallTimeout: an agent that does not answer
// must not hold up the shutdown that called it.
func (r *Registrar) Deregister(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	if err := r.agent.ServiceDeregisterOpts(r.reg.ID, (&api.QueryOptions{}).WithContext(cctx)); err != nil && !isNotFound(err) {
		return r.callError(cctx, "deregister", err)
	}
	r.log.Info("deregistered the local service from Consul")
	return nil
}

// callError wraps the error of one call to the agent, saying so when the
// agent did not answer within callTimeout (a partition, an overloaded agent).
func (r *Registrar) callError(cctx context.Context, call string, err error) error {
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("discovery: local service %q: %s: no answer from the agent within %s: %w", r.reg.ID, call, r.callTimeout, err)
	}
	return fmt.Errorf("discovery: local service %q: %s: %w", r.reg.ID, call, err)
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

package health

import "sync"

// Registry owns the State of every instance ferry has seen, keyed by service and
// instance key, so that state (in-flight counts, ejections, check history)
// survives routing-table rebuilds and reloads. It is safe for concurrent use; it
// is consulted when a table is built, never on the request path.
type Registry struct {
	mu     sync.Mutex
	states map[registryKey]*State
	panics map[string]*Panic // by service
}

type registryKey struct{ service, instance string }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{states: make(map[registryKey]*State), panics: make(map[string]*Panic)}
}

// State returns the state of an instance, creating it on first use.
func (r *Registry) State(service, instance string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := registryKey{service, instance}
	s, ok := r.states[k]
	if !ok {
		s = &State{panic: r.panicLocked(service)}
		r.states[k] = s
	}
	return s
}

// Panic returns the service's panic mode, creating it on first use; it
// lives as long as the registry.
func (r *Registry) Panic(service string) *Panic {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.panicLocked(service)
}

func (r *Registry) panicLocked(service string) *Panic {
	p := r.panics[service]
	if p == nil {
		p = &Panic{}
		r.panics[service] = p
	}
	return p
}

// Retain drops the state of every instance for which keep returns false.
func (r *Registry) Retain(keep func(service, instance string) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.states {
		if !keep(k.service, k.instance) {
			delete(r.states, k)
		}
	}
}

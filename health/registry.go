package health

import "sync"

// Registry owns the State of every instance ferry has seen, keyed by service and
// instance key, so that state (in-flight counts, ejections, check history)
// survives routing-table rebuilds and reloads. It is safe for concurrent use; it
// is consulted when a table is built, never on the request path.
type Registry struct {
	mu     sync.Mutex
	states map[registryKey]*State
}

type registryKey struct{ service, instance string }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{states: make(map[registryKey]*State)}
}

// State returns the state of an instance, creating it on first use.
func (r *Registry) State(service, instance string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := registryKey{service, instance}
	s, ok := r.states[k]
	if !ok {
		s = &State{}
		r.states[k] = s
	}
	return s
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

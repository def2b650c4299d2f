package health

import (
	"sync"
	"sync/atomic"
)

// Panic is one service's panic mode (Envoy's healthy panic threshold): when
// fewer than Threshold percent of the service's routable instances are
// healthy by ferry's own checks (active checks passing, not ejected), every
// one of them becomes available again, so that traffic spreads over all
// Consul-routable instances instead of piling onto the few left or getting
// 503s. A Panic is created by Registry.Panic and shared by the States of the
// service's instances; all its methods are safe for concurrent use.
type Panic struct {
	on atomic.Bool

	mu        sync.Mutex
	threshold int      // percent, 0 = never; guarded by mu
	members   []*State // the routable instances' states; guarded by mu
	onChange  func(on bool, healthy, total int)
}

// Active reports whether the service is in panic mode.
func (p *Panic) Active() bool { return p != nil && p.on.Load() }

// Set gives the panic mode its threshold (percent; 0 turns it off) and the
// states of the service's routable instances, then re-evaluates it. onChange,
// when not nil, is called (outside any lock of the request path) on every
// transition with the counts that caused it.
func (p *Panic) Set(threshold int, members []*State, onChange func(on bool, healthy, total int)) {
	p.mu.Lock()
	p.threshold, p.members, p.onChange = threshold, members, onChange
	p.mu.Unlock()
	p.Evaluate()
}

// Evaluate recomputes the panic mode from the members' own health; the
// prober and ejections call it on every change, a ticker for ejections that
// expire.
func (p *Panic) Evaluate() {
	p.mu.Lock()
	healthy := 0
	for _, s := range p.members {
		if s.ownHealthy() {
			healthy++
		}
	}
	total := len(p.members)
	on := p.threshold > 0 && total > 0 && healthy*100 < p.threshold*total
	changed := p.on.Swap(on) != on
	f := p.onChange
	p.mu.Unlock()
	if changed && f != nil {
		f(on, healthy, total)
	}
}

package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
)

// TestRebuildDeltaMatchesFullPass: whatever discovery publishes — deploys,
// instances leaving and joining, sets turning stale, failing over, services
// no longer watched and back — what the incremental passes after each
// rebuild leave is what passes over everything would: the prober's targets,
// the health states kept, the membership known to the event log and the
// failover datacenters.
func TestRebuildDeltaMatchesFullPass(t *testing.T) {
	const services = 30
	var extra string
	for s := range 10 { // a third of the services have ferry's own check
		extra += fmt.Sprintf("service %q {\n  panic_threshold = 50\n  health_check {}\n}\n", fmt.Sprintf("svc-%04d", s))
	}
	a := scaleApp(t, services, extra)
	sets := make(map[string]*discovery.InstanceSet, services)
	for s := range services {
		name := fmt.Sprintf("svc-%04d", s)
		sets[name] = scaleSet(name, s, 0)
	}
	a.lc.buildMu.Lock()
	defer a.lc.buildMu.Unlock()
	a.rebuildLocked(sets)

	rng := rand.New(rand.NewPCG(1, 2))
	unwatched := map[string]*discovery.InstanceSet{}
	for step := range 400 {
		sets = maps.Clone(sets)
		s := rng.IntN(services)
		name := fmt.Sprintf("svc-%04d", s)
		cur := sets[name]
		if cur == nil {
			sets[name] = unwatched[name] // watched again
		} else {
			next := *cur
			next.Instances = slices.Clone(cur.Instances)
			switch op := rng.IntN(6); op {
			case 0: // a deploy
				next = *scaleSet(name, s, step+1)
			case 1: // an instance leaves
				if len(next.Instances) > 0 {
					next.Instances = next.Instances[1:]
				}
			case 2: // one joins
				next.Instances = append(next.Instances, discovery.Instance{ID: fmt.Sprintf("%s-j%d", name, step),
					Node: "node2", Address: "127.0.0.2", Port: 20000 + step, Weight: 1})
			case 3:
				next.Stale = !next.Stale
			case 4:
				next.FailedOver = !next.FailedOver
				for i := range next.Instances {
					next.Instances[i].Datacenter = "dc2"
				}
			case 5: // no longer watched
				unwatched[name] = cur
				delete(sets, name)
			}
			if _, watched := sets[name]; watched {
				sets[name] = &next
			}
		}
		if rng.IntN(10) == 0 { // a republished set with nothing changed
			other := fmt.Sprintf("svc-%04d", rng.IntN(services))
			if set := sets[other]; set != nil {
				refreshed := *set
				refreshed.Index++
				sets[other] = &refreshed
			}
		}
		a.rebuildLocked(sets)
		checkRebuildState(t, a, sets, step)
	}
}

func checkRebuildState(t *testing.T, a *app, sets map[string]*discovery.InstanceSet, step int) {
	t.Helper()
	s := &a.lc.rebuilt
	table := a.handler.Table()
	want := probeTargetsByService(s.cfg, table, a.registry)
	if !reflect.DeepEqual(s.targets, want) {
		t.Fatalf("step %d: prober targets differ from a full pass:\n got %v\nwant %v", step, s.targets, want)
	}
	var probed []health.Target
	for _, ts := range want {
		probed = append(probed, ts...)
	}
	byKey := func(a, b health.Target) int {
		return strings.Compare(a.Service+" "+a.Instance, b.Service+" "+b.Instance)
	}
	slices.SortFunc(probed, byKey)
	given := slices.SortedFunc(slices.Values(s.probed), byKey)
	if !reflect.DeepEqual(given, probed) && len(given)+len(probed) > 0 {
		t.Fatalf("step %d: the prober was given %d targets, not the %d of a full pass", step, len(given), len(probed))
	}
	if want := failoverDatacenters(sets); !reflect.DeepEqual(s.failover, want) {
		t.Fatalf("step %d: failover datacenters %v, want %v", step, s.failover, want)
	}
	wantStates := map[[2]string]bool{}
	for name, set := range sets {
		for _, inst := range set.Instances {
			wantStates[[2]string{name, inst.Key()}] = true
		}
	}
	a.registry.Retain(func(service, instance string) bool {
		if !wantStates[[2]string{service, instance}] {
			t.Fatalf("step %d: health state of %s %s kept, not in any set", step, service, instance)
		}
		return true
	})
	a.events.mu.Lock()
	defer a.events.mu.Unlock()
	wantMember, gotMember := map[string]map[string]string{}, map[string]map[string]string{}
	for name, set := range sets {
		if !set.Known {
			continue
		}
		m := map[string]string{}
		for _, inst := range set.Instances {
			m[memberKey(inst)] = inst.ID
		}
		wantMember[name] = m
	}
	for name, members := range a.events.member {
		m := map[string]string{}
		for k, seen := range members {
			if seen.routable {
				m[k] = seen.id
			}
		}
		gotMember[name] = m
	}
	if !reflect.DeepEqual(gotMember, wantMember) {
		t.Fatalf("step %d: membership differs from the sets", step)
	}
}

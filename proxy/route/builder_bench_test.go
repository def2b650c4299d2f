package route

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
)

// scaleInputs are the inputs of a table at make bench-scale's size: one
// route per service, each service with its own instances.
func scaleInputs(services, instances int) ([]RouteSpec, map[string]ServiceSpec, map[string]*discovery.InstanceSet) {
	routes := make([]RouteSpec, 0, services)
	specs := make(map[string]ServiceSpec, services)
	sets := make(map[string]*discovery.InstanceSet, services)
	for s := range services {
		name := fmt.Sprintf("svc-%04d", s)
		routes = append(routes, RouteSpec{Name: name, PathPrefix: "/" + name, Service: name})
		specs[name] = ServiceSpec{MaxRequests: 1000}
		sets[name] = scaleSet(name, s, instances, 0)
	}
	return routes, specs, sets
}

// scaleSet is service number s's set after gen deploys: each deploy moves
// the first instance to another port, as ferryscale's replace does.
func scaleSet(name string, s, instances, gen int) *discovery.InstanceSet {
	set := &discovery.InstanceSet{Service: name, Known: true}
	for i := range instances {
		port := 10000 + s*instances + i
		id := name + "-" + strconv.Itoa(i)
		if i == 0 && gen > 0 {
			port += 40000
			id += "-g" + strconv.Itoa(gen)
		}
		set.Instances = append(set.Instances, discovery.Instance{
			ID: id, Node: "node", Address: "127.0.0.1", Port: port, Weight: 1,
			Tags: []string{"v1"}, Status: discovery.StatusPassing,
		})
	}
	return set
}

// BenchmarkBuild is one rebuild of a 1,000-service table (3 instances
// each): after one service's set changed (what a discovery change costs),
// and after every set changed (what a reload or the first build costs).
func BenchmarkBuild(b *testing.B) {
	const services, instances = 1000, 3
	for _, changed := range []int{1, services} {
		b.Run(fmt.Sprintf("changed=%d", changed), func(b *testing.B) {
			routes, specs, sets := scaleInputs(services, instances)
			bl := NewBuilder(health.NewRegistry(), nil)
			bl.Build(routes, specs, sets)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				next := make(map[string]*discovery.InstanceSet, len(sets))
				for k, v := range sets {
					next[k] = v
				}
				for c := range changed {
					s := (i*changed + c) % services
					name := routes[s].Service
					next[name] = scaleSet(name, s, instances, i+1)
				}
				sets = next
				b.StartTimer()
				bl.Build(routes, specs, sets)
			}
		})
	}
}

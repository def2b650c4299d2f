package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
)

// scaleApp is an app (not run) routing services services as make
// bench-scale configures ferry: one route per service, and extra
// configuration. Consul is never
// contacted: the sets are given to rebuildLocked.
func scaleApp(tb testing.TB, services int, extra string) *app {
	tb.Helper()
	var conf strings.Builder
	conf.WriteString("listen = \"127.0.0.1:0\"\nconsul {\n  address = \"127.0.0.1:1\"\n}\nlog {\n  access_log = \"off\"\n}\n")
	for s := range services {
		name := fmt.Sprintf("svc-%04d", s)
		fmt.Fprintf(&conf, "route %q {\n  path_prefix = \"/%s\"\n  service = %q\n}\n", name, name, name)
	}
	conf.WriteString(extra)
	path := filepath.Join(tb.TempDir(), "ferry.hcl")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		tb.Fatal(diags)
	}
	a, err := newApp(cfg, path, hclog.NewNullLogger(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.closeBuilder)
	return a
}

// scaleSet is the set of scaleApp's service number s (3 instances) after
// gen deploys, each of which moves its first instance to another port.
func scaleSet(name string, s, gen int) *discovery.InstanceSet {
	set := &discovery.InstanceSet{Service: name, Known: true}
	for i := range 3 {
		port, id := 10000+s*3+i, name+"-"+strconv.Itoa(i)
		if i == 0 && gen > 0 {
			port, id = port+40000, id+"-g"+strconv.Itoa(gen)
		}
		set.Instances = append(set.Instances, discovery.Instance{ID: id, Node: "node", Address: "127.0.0.1",
			Port: port, Weight: 1, Tags: []string{"v1"}, Status: discovery.StatusPassing})
	}
	return set
}

// BenchmarkRebuild is the whole of cmd/ferry's rebuild at 1,000 services
// (3 instances each) after one service's set changed: the routing table,
// the prober's targets, panic modes, forgotten instances, membership
// events.
func BenchmarkRebuild(b *testing.B) {
	const services = 1000
	a := scaleApp(b, services, "")
	sets := make(map[string]*discovery.InstanceSet, services)
	for s := range services {
		name := fmt.Sprintf("svc-%04d", s)
		sets[name] = scaleSet(name, s, 0)
	}
	a.lc.buildMu.Lock()
	defer a.lc.buildMu.Unlock()
	a.rebuildLocked(sets)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		sets = maps.Clone(sets)
		s := i % services
		name := fmt.Sprintf("svc-%04d", s)
		sets[name] = scaleSet(name, s, i+1)
		b.StartTimer()
		a.rebuildLocked(sets)
	}
}

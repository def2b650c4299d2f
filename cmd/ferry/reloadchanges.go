package main

import (
	"reflect"
	"sort"

	"github.com/ferry-proxy/ferry/config"
)

// configChanges says what a reload changes, as key/value pairs for one log
// line: the routes and services added, removed and changed (by name), and
// the other settings that differ. Nothing when the configurations are the
// same.
func configChanges(cur, next *config.Config) []any {
	var kv []any
	routes := func(c *config.Config) map[string]any {
		m := make(map[string]any, len(c.Routes))
		for _, r := range c.Routes {
			m[r.Name] = *r
		}
		return m
	}
	services := func(c *config.Config) map[string]any {
		m := make(map[string]any, len(c.Services))
		for name, s := range c.Services {
			m[name] = *s
		}
		return m
	}
	kv = appendDiff(kv, "routes", routes(cur), routes(next))
	kv = appendDiff(kv, "services", services(cur), services(next))
	var settings []string
	for _, f := range []struct {
		name string
		a, b any
	}{
		{"listen", cur.Listen, next.Listen},
		{"listeners", cur.Listeners, next.Listeners},
		{"admin", cur.Admin, next.Admin},
		{"shutdown_timeout", cur.ShutdownTimeout, next.ShutdownTimeout},
		{"pprof", cur.Pprof, next.Pprof},
		{"trusted_proxies", cur.TrustedProxies, next.TrustedProxies},
		{"limits", cur.Limits, next.Limits},
		{"consul", cur.Consul, next.Consul},
		{"log", cur.Log, next.Log},
		{"local_service", cur.LocalService, next.LocalService},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			settings = append(settings, f.name)
		}
	}
	if len(settings) > 0 {
		kv = append(kv, "settings_changed", settings)
	}
	return kv
}

// appendDiff adds what to's keys add, remove and change against from.
func appendDiff(kv []any, what string, from, to map[string]any) []any {
	var added, removed, changed []string
	for k, v := range to {
		old, ok := from[k]
		switch {
		case !ok:
			added = append(added, k)
		case !reflect.DeepEqual(old, v):
			changed = append(changed, k)
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			removed = append(removed, k)
		}
	}
	for _, l := range []struct {
		suffix string
		names  []string
	}{{"_added", added}, {"_removed", removed}, {"_changed", changed}} {
		if len(l.names) > 0 {
			sort.Strings(l.names)
			kv = append(kv, what+l.suffix, l.names)
		}
	}
	return kv
}

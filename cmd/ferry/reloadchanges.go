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
	for _, f := range settingFields {
		if !reflect.DeepEqual(f.get(cur), f.get(next)) {
			settings = append(settings, f.name)
		}
	}
	if len(settings) > 0 {
		kv = append(kv, "settings_changed", settings)
	}
	return kv
}

// settingFields are the configuration's settings other than routes and
// services, by their name in the configuration language. Every field of
// config.Config is either here or compared above (Routes, Services) or not
// configuration (Files): TestConfigChangesCoverEveryField keeps it so.
var settingFields = []struct {
	name  string
	field string // config.Config's field
	get   func(c *config.Config) any
}{
	{"listen", "Listen", func(c *config.Config) any { return c.Listen }},
	{"listeners", "Listeners", func(c *config.Config) any { return c.Listeners }},
	{"admin", "Admin", func(c *config.Config) any { return c.Admin }},
	{"shutdown_timeout", "ShutdownTimeout", func(c *config.Config) any { return c.ShutdownTimeout }},
	{"pprof", "Pprof", func(c *config.Config) any { return c.Pprof }},
	{"fast_lane", "FastLane", func(c *config.Config) any { return c.FastLane }},
	{"trusted_proxies", "TrustedProxies", func(c *config.Config) any { return c.TrustedProxies }},
	{"limits", "Limits", func(c *config.Config) any { return c.Limits }},
	{"consul", "Consul", func(c *config.Config) any { return c.Consul }},
	{"log", "Log", func(c *config.Config) any { return c.Log }},
	{"local_service", "LocalService", func(c *config.Config) any { return c.LocalService }},
	{"redis", "Redis", func(c *config.Config) any { return c.Redis }},
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

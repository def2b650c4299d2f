package main

import (
	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// watchesOf lists the services the routes need, each once: every backend
// of a traffic split too. A backend's tag selects among the instances
// ferry watches (the service block's tag, if any, filters them first in
// Consul's query).
func watchesOf(cfg *config.Config) []discovery.Watch {
	seen := make(map[string]bool)
	var ws []discovery.Watch
	for _, name := range routedServices(cfg) {
		if seen[name] {
			continue
		}
		seen[name] = true
		w := discovery.Watch{Service: name}
		if s := cfg.Services[name]; s != nil {
			w.Tag, w.Health, w.Failover = s.Tag, s.Health, s.Failover
		}
		ws = append(ws, w)
	}
	return ws
}

// routedServices lists every service a route sends traffic to, in order,
// with repeats.
func routedServices(cfg *config.Config) []string {
	var out []string
	for _, r := range cfg.Routes {
		if len(r.Backends) == 0 {
			out = append(out, r.Service)
		}
		for _, b := range r.Backends {
			out = append(out, b.Service)
		}
	}
	return out
}

// specsOf converts the config into the proxy's own specs, with each
// route's filter chain from filters (nil: none).
func specsOf(cfg *config.Config, filters *routeFilters) ([]route.RouteSpec, map[string]route.ServiceSpec) {
	routes := make([]route.RouteSpec, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		rs := route.RouteSpec{
			Name:         r.Name,
			Host:         r.Host,
			PathPrefix:   r.PathPrefix,
			Service:      r.Service,
			StripPrefix:  r.StripPrefix,
			MaxBodyBytes: r.MaxBodyBytes,
			Filters:      filters.chain(r.Name),
		}
		if len(r.Backends) > 1 || len(r.Backends) == 1 && r.Backends[0].Tag != "" {
			for _, b := range r.Backends {
				rs.Backends = append(rs.Backends, route.Backend{Service: b.Service, Tag: b.Tag, Weight: b.Weight})
			}
		}
		for _, h := range r.HeaderConditions {
			rs.Headers = append(rs.Headers, route.HeaderCond{Name: h.Name, Values: h.Values})
		}
		routes = append(routes, rs)
	}
	services := make(map[string]route.ServiceSpec)
	for _, name := range routedServices(cfg) {
		s := cfg.Services[name]
		if s == nil {
			s = config.DefaultService(name) // the documented defaults (max_requests and its queue included)
		}
		services[name] = route.ServiceSpec{
			Name:               s.Name,
			Tag:                s.Tag,
			Balance:            s.Balance,
			ConnectTimeout:     s.ConnectTimeout,
			ResponseTimeout:    s.ResponseTimeout,
			Retries:            s.Retries,
			MaxRequests:        s.MaxRequests,
			MaxPendingRequests: s.MaxPendingRequests,
			QueueTimeout:       s.QueueTimeout,
			Protocol:           s.UpstreamProtocol(), // TLS: see upstreamTLSCache
			Outlier: health.Outlier{
				ConsecutiveFailures: s.Outlier.ConsecutiveFailures,
				BaseEjectionTime:    s.Outlier.BaseEjectionTime,
			},
		}
	}
	return routes, services
}

// failoverDatacenters maps, for every service served from a failover
// datacenter, each routable instance's address to that datacenter (for the
// access log); nil when no service is failed over.
func failoverDatacenters(sets map[string]*discovery.InstanceSet) map[string]map[string]string {
	var out map[string]map[string]string
	for name, set := range sets {
		if !set.FailedOver {
			continue
		}
		if out == nil {
			out = make(map[string]map[string]string)
		}
		m := make(map[string]string, len(set.Instances))
		for _, in := range set.Instances {
			m[in.HostPort()] = in.Datacenter
		}
		out[name] = m
	}
	return out
}

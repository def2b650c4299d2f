package main

import (
	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// watchesOf lists the services the routes need, each once.
func watchesOf(cfg *config.Config) []discovery.Watch {
	seen := make(map[string]bool)
	var ws []discovery.Watch
	for _, r := range cfg.Routes {
		if seen[r.Service] {
			continue
		}
		seen[r.Service] = true
		w := discovery.Watch{Service: r.Service}
		if s := cfg.Services[r.Service]; s != nil {
			w.Tag, w.Health, w.Failover = s.Tag, s.Health, s.Failover
		}
		ws = append(ws, w)
	}
	return ws
}

// specsOf converts the config into the proxy's own specs.
func specsOf(cfg *config.Config) ([]route.RouteSpec, map[string]route.ServiceSpec) {
	routes := make([]route.RouteSpec, 0, len(cfg.Routes))
	services := make(map[string]route.ServiceSpec)
	for _, r := range cfg.Routes {
		routes = append(routes, route.RouteSpec{
			Name:         r.Name,
			Host:         r.Host,
			PathPrefix:   r.PathPrefix,
			Service:      r.Service,
			StripPrefix:  r.StripPrefix,
			MaxBodyBytes: r.MaxBodyBytes,
		})
		s := cfg.Services[r.Service]
		if s == nil {
			s = config.DefaultService(r.Service) // the documented defaults (max_requests and its queue included)
		}
		services[r.Service] = route.ServiceSpec{
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

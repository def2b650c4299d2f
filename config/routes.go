package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// service builds one service block; nil when its name is invalid.
func (d *decoder) service(rs *rawService) *Service {
	if err := consulName("service")(rs.Name); err != nil {
		d.errorf(rs.NameRange, "Invalid service name", "%s.", err)
		return nil
	}
	s := DefaultService(rs.Name)
	d.str(rs.Tag, &s.Tag, "Invalid tag", noSpace("tag"))
	d.str(rs.Balance, &s.Balance, "Unknown balancer", oneOf("balance", balancers...))
	d.duration(rs.ConnectTimeout, &s.ConnectTimeout, positive)
	d.duration(rs.ResponseTimeout, &s.ResponseTimeout, positive)
	d.integer(rs.Retries, &s.Retries, 0, MaxRetries)
	d.integer(rs.MaxRequests, &s.MaxRequests, 0, maxInt)
	d.integer(rs.MaxPendingRequests, &s.MaxPendingRequests, 0, maxInt)
	d.duration(rs.QueueTimeout, &s.QueueTimeout, positive)
	d.str(rs.Health, &s.Health, "Unknown health policy", oneOf("health", healthPolicies...))
	d.integer(rs.PanicThreshold, &s.PanicThreshold, 0, 100)
	d.upstream(rs, s) // tls.go
	fo, extraFO, more := onlyOne(rs.Failover, "failover", func(b *rawFailover) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if fo != nil {
		s.Failover = d.failover(fo)
	}
	for _, b := range extraFO {
		d.failover(b)
	}

	hc, extraHC, more := onlyOne(rs.HealthCheck, "health_check", func(b *rawHealthCheck) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if hc != nil {
		s.HealthCheck = d.healthCheck(hc)
	}
	for _, b := range extraHC {
		d.healthCheck(b)
	}
	ol, extraOL, more := onlyOne(rs.Outlier, "outlier", func(b *rawOutlier) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if ol != nil {
		d.outlier(ol, &s.Outlier)
	}
	for _, b := range extraOL {
		d.outlier(b, &Outlier{})
	}
	return s
}

// failover builds a failover block: its datacenters, each once.
func (d *decoder) failover(rf *rawFailover) []string {
	if rf.Datacenters == nil {
		d.required(nil, "datacenters", rf.DefRange, `A failover block lists the datacenters to use, in order, such as datacenters = ["dc2"].`)
		return nil
	}
	var dcs []string
	seen := make(map[string]bool)
	d.strList(rf.Datacenters, &dcs, "Invalid datacenter", func(s string) error {
		if s == "" || hasSpaceOrControl(s) {
			return reject("A datacenter name must be non-empty without white space, not %q", s)
		}
		if seen[s] {
			return reject("The datacenter %q is listed twice", s)
		}
		seen[s] = true
		return nil
	})
	return dcs
}

func (d *decoder) outlier(ro *rawOutlier, o *Outlier) {
	d.integer(ro.ConsecutiveFailures, &o.ConsecutiveFailures, 1, maxInt)
	d.duration(ro.BaseEjectionTime, &o.BaseEjectionTime, positive)
}

func (d *decoder) healthCheck(rh *rawHealthCheck) *HealthCheck {
	h := defaultHealthCheck()
	d.str(rh.Path, &h.Path, "Invalid health check path", healthPath)
	d.duration(rh.Interval, &h.Interval, positive)
	d.duration(rh.Timeout, &h.Timeout, positive)
	d.integer(rh.HealthyThreshold, &h.HealthyThreshold, 1, maxInt)
	d.integer(rh.UnhealthyThreshold, &h.UnhealthyThreshold, 1, maxInt)
	return h
}

// routeKey identifies what a route matches; two routes with the same key
// conflict.
type routeKey struct{ host, prefix, headers string }

// routes builds every route in order, rejecting two that match the same
// host and prefix, and gives each service a route names without a service
// block the defaults.
func (d *decoder) routes(raws []*rawRoute, cfg *Config) {
	first := make(map[routeKey]*rawRoute)
	for _, rr := range raws {
		r, ok := d.route(rr, cfg)
		for _, b := range r.Backends {
			if cfg.Services[b.Service] == nil {
				cfg.Services[b.Service] = DefaultService(b.Service)
			}
		}
		if r.PathPrefix == "" || !ok.host {
			continue // the key is unknown
		}
		key := routeKey{r.Host, r.PathPrefix, conditionKey(r.HeaderConditions)}
		if f, dup := first[key]; dup {
			d.errorf(rr.PathPrefix.Expr.Range(), "Duplicate route",
				"Route %q matches the same host (%s) and path_prefix (%q)%s as route %q, so it could never be chosen; %s.",
				rr.Name, hostText(r.Host), r.PathPrefix, conditionText(r.HeaderConditions), f.Name, firstDefinedHere(f.PathPrefix.Expr.Range()))
			continue
		}
		first[key] = rr
		if ok.all {
			cfg.Routes = append(cfg.Routes, r)
		}
	}
}

// routeOK says which parts of a route are valid: host, its match key (host
// and header conditions); all, everything.
type routeOK struct{ host, all bool }

// route builds one route. Its PathPrefix and Service are "" unless valid.
func (d *decoder) route(rr *rawRoute, cfg *Config) (*Route, routeOK) {
	r := &Route{Name: rr.Name, MaxBodyBytes: DefaultMaxBodyBytes}
	before := len(d.diags)
	if err := consulName("route")(rr.Name); err != nil {
		d.errorf(rr.NameRange, "Invalid route name", "%s.", err)
	}
	d.requiredStr(rr.PathPrefix, "path_prefix", rr.DefRange, &r.PathPrefix, "Invalid path_prefix",
		`A route needs a path_prefix: an absolute path such as "/api" ("/" matches every path).`, pathPrefix)
	d.routeBackends(rr, r) // backends.go
	d.boolean(rr.StripPrefix, &r.StripPrefix)
	d.byteSize(rr.MaxBodyBytes, &r.MaxBodyBytes)
	d.filtersPart2(rr, r) // filters_part2.go: compress and cache
	beforeHost := len(d.diags)
	d.str(rr.Host, &r.Host, "Invalid host", routeHost)
	r.HeaderConditions = d.headerConditions(rr) // backends.go
	keyOK := len(d.diags) == beforeHost
	r.Filters = withPart2(d.routeFilters(rr, cfg), r) // filters.go
	d.checkServiceVariable(r)
	return r, routeOK{host: keyOK, all: len(d.diags) == before}
}

// hostText describes a route's host in a message.
func hostText(h string) string {
	if h == "" {
		return "any host"
	}
	return fmt.Sprintf("%q", h)
}

package config

import (
	"fmt"
	"net/textproto"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Backend is one share of a route's traffic: the instances of Service (with
// Tag, when set: only instances carrying it; else the service block's tag)
// get Weight parts of the route's requests. A route's weights add up to
// more than 0; a backend of weight 0 gets nothing (a drained canary) but is
// still watched.
type Backend struct {
	Service string
	Tag     string
	Weight  int
	Range   hcl.Range // the backend block, or the service attribute
}

// HeaderCondition is a route condition: the request has a field Name
// (canonical) with one of Values (exact, case-sensitive); with several
// fields of that name, any of them may match.
type HeaderCondition struct {
	Name   string
	Values []string
	Range  hcl.Range
}

// Bounds of backend weights.
const (
	MaxBackendWeight     = 1_000_000
	defaultBackendWeight = 1
)

type rawBackend struct {
	Service *hcl.Attribute `hcl:"service,optional"`
	Tag     *hcl.Attribute `hcl:"tag,optional"`
	Weight  *hcl.Attribute `hcl:"weight,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawHeaderCondition struct {
	Name      string         `hcl:"name,label"`
	NameRange hcl.Range      `hcl:"name,label_range"`
	Values    *hcl.Attribute `hcl:"values,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// routeBackends decodes a route's service attribute or backend blocks
// (exactly one of the two) into r.Backends, and sets r.Service: the
// shorthand's service, or the first backend's (so that code that knows one
// service per route keeps working; the split itself is r.Backends).
func (d *decoder) routeBackends(rr *rawRoute, r *Route) {
	if rr.Service != nil && len(rr.Backends) > 0 {
		d.errorf(rr.Service.NameRange, "Conflicting service and backend",
			"A route names its service with service = \"...\" (one backend) or with backend blocks (a traffic split), not both; the first backend block is at %s.",
			posString(rr.Backends[0].DefRange))
		return
	}
	if len(rr.Backends) == 0 {
		if d.requiredStr(rr.Service, "service", rr.DefRange, &r.Service, "Invalid service name",
			`A route needs the Consul service to forward to, such as service = "user", or backend blocks to split traffic.`,
			normalising(consulName("service"))) {
			r.Backends = []Backend{{Service: r.Service, Weight: defaultBackendWeight, Range: rr.Service.Expr.Range()}}
		}
		return
	}
	before := len(d.diags)
	type bkey struct{ service, tag string }
	first := make(map[bkey]hcl.Range)
	total := 0
	for _, rb := range rr.Backends {
		b := Backend{Weight: defaultBackendWeight, Range: rb.DefRange}
		d.requiredStr(rb.Service, "service", rb.DefRange, &b.Service, "Invalid service name",
			`A backend block needs the Consul service to forward to, such as service = "web".`, normalising(consulName("service")))
		d.str(rb.Tag, &b.Tag, "Invalid tag", noSpace("tag"))
		d.integer(rb.Weight, &b.Weight, 0, MaxBackendWeight)
		if b.Service == "" {
			continue
		}
		k := bkey{b.Service, b.Tag}
		if at, dup := first[k]; dup {
			d.errorf(rb.DefRange, "Duplicate backend",
				"Service %q with tag %q is already a backend of this route; give it one block with the sum of the weights; %s.", b.Service, b.Tag, firstDefinedHere(at))
			continue
		}
		first[k] = rb.DefRange
		total += b.Weight
		r.Backends = append(r.Backends, b)
	}
	if len(d.diags) == before && total == 0 {
		d.errorf(rr.Backends[0].DefRange, "No backend weight",
			"The weights of a route's backends add up to 0, so no request could be forwarded; give at least one backend a weight above 0.")
	}
	if len(d.diags) != before {
		r.Backends = nil
		return
	}
	r.Service = r.Backends[0].Service
}

// headerConditions decodes a route's header blocks.
func (d *decoder) headerConditions(rr *rawRoute) []HeaderCondition {
	var out []HeaderCondition
	first := make(map[string]hcl.Range)
	for _, rh := range rr.HeaderCond {
		name, err := headerName("header name")(rh.Name)
		if err != nil {
			d.errorf(rh.NameRange, "Invalid header condition", "%s.", err)
			continue
		}
		if at, dup := first[name]; dup {
			d.errorf(rh.NameRange, "Duplicate header condition",
				"The route already has a condition on %s; list every accepted value in one values list; %s.", name, firstDefinedHere(at))
			continue
		}
		first[name] = rh.NameRange
		c := HeaderCondition{Name: name, Range: rh.DefRange}
		if rh.Values == nil {
			d.required(nil, "values", rh.DefRange, `A header condition lists the values that match, such as values = ["always"].`)
			continue
		}
		if !d.strList(rh.Values, &c.Values, "Invalid header value", func(s string) error { return headerValue(name, s) }) {
			continue
		}
		if len(c.Values) == 0 {
			d.errorf(rh.Values.Expr.Range(), "Empty header condition", "A header condition needs at least one value; a condition without values could never match.")
			continue
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// conditionKey identifies a route's header conditions, for the duplicate
// check: two routes with the same host, prefix and conditions conflict.
func conditionKey(cs []HeaderCondition) string {
	var b strings.Builder
	for _, c := range cs {
		vals := append([]string(nil), c.Values...)
		sort.Strings(vals)
		fmt.Fprintf(&b, "%s=%q;", textproto.CanonicalMIMEHeaderKey(c.Name), vals)
	}
	return b.String()
}

// checkServiceVariable rejects {service} in the headers of a route that
// splits over several services: the variable would not name one.
func (d *decoder) checkServiceVariable(r *Route) {
	services := make(map[string]bool)
	for _, b := range r.Backends {
		services[b.Service] = true
	}
	if len(services) < 2 {
		return
	}
	for _, f := range r.Filters {
		if f.Headers != nil && f.Headers.usesVariable("service") {
			d.errorf(f.Range, "Ambiguous {service}",
				"Route %q splits its traffic over several services, so {service} names none of them; use {route}, or split over tags of one service.", r.Name)
		}
	}
}

// conditionText completes "matches the same host and path_prefix" in the
// duplicate route message.
func conditionText(cs []HeaderCondition) string {
	if len(cs) == 0 {
		return ""
	}
	return " with the same header conditions"
}

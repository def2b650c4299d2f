package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Headers is a headers filter: header rules applied to the request on its
// way upstream and to the response on its way to the client. On each side
// removals run first, then sets (replacing every value), then adds
// (appending one more value). Names are canonical; values may hold the
// variables listed in HeaderVariables.
type Headers struct {
	RequestSet     []HeaderValue
	RequestAdd     []HeaderValue
	RequestRemove  []string
	ResponseSet    []HeaderValue
	ResponseAdd    []HeaderValue
	ResponseRemove []string
}

// HeaderVariables are the variables a headers value may hold, each written
// in braces: "{client_ip}" is the client's address (after trusted_proxies),
// "{host}" the request's Host, "{route}" the route's name, "{service}" the
// route's service (a route that splits over several services cannot use
// it) and "{request_id}" the request's X-Request-Id. Any other "{name}"
// made of letters and "_" is an error, so that a typo is not sent as is.
var HeaderVariables = []string{"client_ip", "host", "route", "service", "request_id"}

type rawHeaders struct {
	RequestSet     *hcl.Attribute `hcl:"request_set,optional"`
	RequestAdd     *hcl.Attribute `hcl:"request_add,optional"`
	RequestRemove  *hcl.Attribute `hcl:"request_remove,optional"`
	ResponseSet    *hcl.Attribute `hcl:"response_set,optional"`
	ResponseAdd    *hcl.Attribute `hcl:"response_add,optional"`
	ResponseRemove *hcl.Attribute `hcl:"response_remove,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

func (d *decoder) headersFilter(rh *rawHeaders) *Filter {
	before := len(d.diags)
	h := &Headers{
		RequestSet:  d.headerMap(rh.RequestSet, "Invalid request_set", headerVariables),
		RequestAdd:  d.headerMap(rh.RequestAdd, "Invalid request_add", headerVariables),
		ResponseSet: d.headerMap(rh.ResponseSet, "Invalid response_set", headerVariables),
		ResponseAdd: d.headerMap(rh.ResponseAdd, "Invalid response_add", headerVariables),
	}
	h.RequestRemove = d.headerList(rh.RequestRemove, "Invalid request_remove")
	h.ResponseRemove = d.headerList(rh.ResponseRemove, "Invalid response_remove")
	if len(d.diags) != before {
		return nil
	}
	if len(h.RequestSet)+len(h.RequestAdd)+len(h.RequestRemove)+len(h.ResponseSet)+len(h.ResponseAdd)+len(h.ResponseRemove) == 0 {
		d.errorf(rh.DefRange, "Empty headers block",
			"A headers block needs at least one of request_set, request_add, request_remove, response_set, response_add and response_remove.")
		return nil
	}
	return &Filter{Kind: FilterHeaders, Range: rh.DefRange, Headers: h}
}

// headerList decodes a list of header names, canonical and each once.
func (d *decoder) headerList(attr *hcl.Attribute, summary string) []string {
	var names []string
	seen := make(map[string]bool)
	if !d.strList(attr, &names, summary, func(s string) error {
		name, err := settableHeader("header name")(s)
		if err != nil {
			return err
		}
		if seen[name] {
			return reject("The header %q is listed twice; header names are case-insensitive", name)
		}
		seen[name] = true
		return nil
	}) {
		return nil
	}
	for i, s := range names {
		names[i], _ = headerName("")(s)
	}
	return names
}

// headerVariables checks the variables in a headers value.
func headerVariables(name, v string) error {
	for _, ref := range variableRefs(v) {
		known := false
		for _, k := range HeaderVariables {
			known = known || ref == k
		}
		if !known {
			return reject("The value of %s uses {%s}, which is not a variable; the variables are {%s}", name, ref, strings.Join(HeaderVariables, "}, {"))
		}
	}
	return nil
}

// variableRefs returns the names of the "{name}" references in v, name
// made of lower-case letters and "_"; other braces are literal.
func variableRefs(v string) []string {
	var refs []string
	for {
		open := strings.IndexByte(v, '{')
		if open < 0 {
			return refs
		}
		v = v[open+1:]
		end := strings.IndexByte(v, '}')
		if end <= 0 {
			continue
		}
		name := v[:end]
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_") == "" {
			refs = append(refs, name)
			v = v[end+1:]
		}
	}
}

// usesVariable reports whether any value of h holds {name}.
func (h *Headers) usesVariable(name string) bool {
	for _, list := range [][]HeaderValue{h.RequestSet, h.RequestAdd, h.ResponseSet, h.ResponseAdd} {
		for _, hv := range list {
			if strings.Contains(hv.Value, "{"+name+"}") {
				return true
			}
		}
	}
	return false
}

// Package headers is the headers route filter (SPEC §13): it sets, adds and
// removes request fields on the way upstream and response fields on the way
// to the client. Values may hold variables: {client_ip}, {host}, {route},
// {service} and {request_id}.
package headers

import (
	"context"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// Field is one header field to set or add; Value may hold variables.
type Field struct{ Name, Value string }

// Options are the rules of one headers filter. On each side the removals
// run first, then the sets (replacing every value of the field), then the
// adds (one more value).
type Options struct {
	RequestSet, RequestAdd   []Field
	RequestRemove            []string
	ResponseSet, ResponseAdd []Field
	ResponseRemove           []string
	// Service is what {service} stands for: the route's service.
	Service string
}

// Filter applies one headers block. It is immutable once built and safe for
// concurrent use.
type Filter struct {
	reqSet, reqAdd   []rule
	reqRemove        []string
	respSet, respAdd []rule
	respRemove       []string
	hasRequest       bool
	hasResponse      bool
}

// New compiles the rules. Unknown variables are left as written (config
// rejects them, so they do not occur).
func New(o Options) *Filter {
	f := &Filter{
		reqSet: compile(o.RequestSet, o.Service), reqAdd: compile(o.RequestAdd, o.Service), reqRemove: o.RequestRemove,
		respSet: compile(o.ResponseSet, o.Service), respAdd: compile(o.ResponseAdd, o.Service), respRemove: o.ResponseRemove,
	}
	f.hasRequest = len(f.reqSet)+len(f.reqAdd)+len(f.reqRemove) > 0
	f.hasResponse = len(f.respSet)+len(f.respAdd)+len(f.respRemove) > 0
	return f
}

// Request applies the request rules; it never answers.
func (f *Filter) Request(_ context.Context, r filter.Request) *filter.Answer {
	if !f.hasRequest {
		return nil
	}
	for _, name := range f.reqRemove {
		r.DelHeader(name)
	}
	for i := range f.reqSet {
		r.SetHeader(f.reqSet[i].name, f.reqSet[i].expand(r))
	}
	for i := range f.reqAdd {
		r.AddHeader(f.reqAdd[i].name, f.reqAdd[i].expand(r))
	}
	return nil
}

// Response applies the response rules. The core does not run response
// filters on a filter's own answer (a 401 or 429), so these rules shape
// what upstream services answer.
func (f *Filter) Response(r filter.Request, w filter.Response) {
	if !f.hasResponse {
		return
	}
	for _, name := range f.respRemove {
		w.DelHeader(name)
	}
	for i := range f.respSet {
		w.SetHeader(f.respSet[i].name, f.respSet[i].expand(r))
	}
	for i := range f.respAdd {
		w.AddHeader(f.respAdd[i].name, f.respAdd[i].expand(r))
	}
}

// rule is one field with its value split into literal text and variables,
// so that a constant value costs no work per request.
type rule struct {
	name     string
	constant string // the value when parts is nil
	parts    []part
}

// part is literal text, or a variable when v is not 0.
type part struct {
	text string
	v    variable
}

type variable int

const (
	literal variable = iota
	clientIP
	host
	route
	service
	requestID
)

var variables = map[string]variable{
	"client_ip": clientIP, "host": host, "route": route, "service": service, "request_id": requestID,
}

func compile(fields []Field, svc string) []rule {
	out := make([]rule, 0, len(fields))
	for _, f := range fields {
		out = append(out, compileOne(f, svc))
	}
	return out
}

// compileOne splits the value at "{name}" references to known variables;
// {service} is known when the filter is built and becomes literal text.
func compileOne(f Field, svc string) rule {
	var parts []part
	s := f.Value
	hasVar := false
	for {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			break
		}
		v, ok := variables[s[open+1:open+end]]
		if !ok {
			parts = append(parts, part{text: s[:open+1]})
			s = s[open+1:]
			continue
		}
		if open > 0 {
			parts = append(parts, part{text: s[:open]})
		}
		if v == service {
			parts = append(parts, part{text: svc})
		} else {
			parts = append(parts, part{v: v})
			hasVar = true
		}
		s = s[open+end+1:]
	}
	if s != "" {
		parts = append(parts, part{text: s})
	}
	if !hasVar {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.text)
		}
		return rule{name: f.Name, constant: b.String()}
	}
	return rule{name: f.Name, parts: parts}
}

func (ru *rule) expand(r filter.Request) string {
	if ru.parts == nil {
		return ru.constant
	}
	var b strings.Builder
	for _, p := range ru.parts {
		switch p.v {
		case literal:
			b.WriteString(p.text)
		case clientIP:
			b.WriteString(r.ClientIP())
		case host:
			b.WriteString(r.Host())
		case route:
			b.WriteString(r.Route())
		case requestID:
			b.WriteString(r.Header("X-Request-Id"))
		}
	}
	return sanitize(b.String())
}

// sanitize drops control characters a variable may have brought in (a Host
// or X-Request-Id is parsed by the front-end, but a header value must never
// carry a line break).
func sanitize(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

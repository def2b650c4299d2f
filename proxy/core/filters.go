package core

import (
	"errors"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// The core's side of route filters (SPEC §13, package filter): the views a
// filter sees, the header edits it leaves, and where they are applied. A
// route without filters never touches any of this: the front-ends build no
// view and the heads are written as before.

// HeaderEdits are the header changes filters asked for. Nothing is changed
// in place: the front-end that writes the head drops the fields Dropped
// names and appends Added. A name is compared case-insensitively.
type HeaderEdits struct {
	del []string    // lower-case names whose original fields are dropped
	add [][2]string // fields appended, in order
}

// Reset forgets every edit, keeping the memory.
func (e *HeaderEdits) Reset() {
	e.del, e.add = e.del[:0], e.add[:0]
}

// Empty reports whether there is nothing to apply.
func (e *HeaderEdits) Empty() bool { return e == nil || len(e.del)+len(e.add) == 0 }

// Set replaces every field of that name with one.
func (e *HeaderEdits) Set(name, value string) {
	e.Del(name)
	e.add = append(e.add, [2]string{name, value})
}

// Add appends a field, keeping those of the same name.
func (e *HeaderEdits) Add(name, value string) {
	e.add = append(e.add, [2]string{name, value})
}

// Del removes every field of that name, original or added.
func (e *HeaderEdits) Del(name string) {
	lower := strings.ToLower(name)
	if !e.dropped(lower) {
		e.del = append(e.del, lower)
	}
	kept := e.add[:0]
	for _, f := range e.add {
		if !strings.EqualFold(f[0], name) {
			kept = append(kept, f)
		}
	}
	e.add = kept
}

func (e *HeaderEdits) dropped(lower string) bool {
	for _, d := range e.del {
		if d == lower {
			return true
		}
	}
	return false
}

// Dropped reports whether the original fields named name are dropped; it
// allocates nothing (the wire writers call it for every field).
func (e *HeaderEdits) Dropped(name []byte) bool {
	if e == nil {
		return false
	}
	for _, d := range e.del {
		if len(d) == len(name) && lowerEqual(d, name) {
			return true
		}
	}
	return false
}

// lowerEqual compares a lower-case name with a field name of any case,
// without converting it (no allocation).
func lowerEqual(lower string, name []byte) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// DroppedString is Dropped for a string name.
func (e *HeaderEdits) DroppedString(name string) bool {
	return e != nil && e.dropped(strings.ToLower(name))
}

// Added returns the fields to append, in order.
func (e *HeaderEdits) Added() [][2]string {
	if e == nil {
		return nil
	}
	return e.add
}

// lookup answers Header and HeaderValues through the edits: original
// values unless dropped, then the added ones.
func (e *HeaderEdits) lookup(name string, original []string) []string {
	if e.Empty() {
		return original
	}
	var out []string
	if !e.dropped(strings.ToLower(name)) {
		out = append(out, original...)
	}
	for _, f := range e.add {
		if strings.EqualFold(f[0], name) {
			out = append(out, f[1])
		}
	}
	return out
}

// RequestSource is what a front-end tells filters about the request it
// parsed. Every string returned is the filter's to keep: a front-end whose
// buffers are reused copies.
type RequestSource interface {
	Method() string
	Host() string
	RawQuery() string
	ClientIP() string
	HeaderValues(name string) []string
}

// FilterRequest is the filter.Request the core hands a route's filters: the
// front-end's RequestSource plus the canonical path, the route, the header
// edits for the upstream request and the per-request values. A front-end
// keeps one per connection (or request) and resets it for each request.
type FilterRequest struct {
	src    RequestSource
	path   string
	route  string
	Edits  HeaderEdits // applied to the upstream request's head
	values map[any]any
}

var _ filter.Request = (*FilterRequest)(nil)

// Reset prepares r for a new request from src.
func (r *FilterRequest) Reset(src RequestSource) {
	r.src, r.path, r.route = src, "", ""
	r.Edits.Reset()
	clear(r.values)
}

func (r *FilterRequest) Method() string   { return r.src.Method() }
func (r *FilterRequest) Host() string     { return r.src.Host() }
func (r *FilterRequest) Path() string     { return r.path }
func (r *FilterRequest) RawQuery() string { return r.src.RawQuery() }
func (r *FilterRequest) Route() string    { return r.route }
func (r *FilterRequest) ClientIP() string { return r.src.ClientIP() }

// Header and HeaderValues read the client's request, as the filter
// contract says: edits made by earlier filters go upstream, they do not
// change what later filters read.
func (r *FilterRequest) Header(name string) string {
	if v := r.src.HeaderValues(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (r *FilterRequest) HeaderValues(name string) []string { return r.src.HeaderValues(name) }
func (r *FilterRequest) SetHeader(name, value string)      { r.Edits.Set(name, value) }
func (r *FilterRequest) AddHeader(name, value string)      { r.Edits.Add(name, value) }
func (r *FilterRequest) DelHeader(name string)             { r.Edits.Del(name) }

func (r *FilterRequest) Set(key, value any) {
	if r.values == nil {
		r.values = make(map[any]any)
	}
	r.values[key] = value
}

func (r *FilterRequest) Value(key any) any { return r.values[key] }

// filterResponse is the filter.Response over an exchange's upstream head:
// reads see the edits made so far, writes go to the exchange's RespEdits.
type filterResponse struct{ x *Exchange }

var _ filter.Response = filterResponse{}

func (w filterResponse) Status() int { return w.x.Resp.Status }

func (w filterResponse) Header(name string) string {
	if v := w.HeaderValues(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (w filterResponse) HeaderValues(name string) []string {
	var original []string
	r := &w.x.Resp
	for i := 0; i < r.NFields; i++ {
		if f := &r.Fields[i]; strings.EqualFold(string(f.Name), name) {
			original = append(original, string(f.Value))
		}
	}
	return w.x.RespEdits.lookup(name, original)
}

func (w filterResponse) SetHeader(name, value string) { w.x.RespEdits.Set(name, value) }
func (w filterResponse) AddHeader(name, value string) { w.x.RespEdits.Add(name, value) }
func (w filterResponse) DelHeader(name string)        { w.x.RespEdits.Del(name) }

// EachHeader lists the response's fields as they stand (filter.HeaderLister).
func (w filterResponse) EachHeader(fn func(name, value string)) {
	r, e := &w.x.Resp, &w.x.RespEdits
	for i := 0; i < r.NFields; i++ {
		f := &r.Fields[i]
		if f.Kind == wire.RespHopByHop || e.Dropped(f.Name) {
			continue
		}
		fn(string(f.Name), string(f.Value))
	}
	for _, f := range e.Added() {
		fn(f[0], f[1])
	}
}

var _ filter.HeaderLister = filterResponse{}

// errorResponse is the filter.Response of ferry's own error answer to a
// forwarded request (502, 504), for a ResponseReplacer to stand in for it.
type errorResponse int

func (e errorResponse) Status() int                   { return int(e) }
func (errorResponse) Header(string) string            { return "" }
func (errorResponse) HeaderValues(string) []string    { return nil }
func (errorResponse) SetHeader(string, string)        {}
func (errorResponse) AddHeader(string, string)        {}
func (errorResponse) DelHeader(string)                {}
func (errorResponse) EachHeader(func(string, string)) {}

// replace asks the route's response replacers whether one answers instead
// of w; nil: none does (or the route has no filters).
func (x *Exchange) replace(w filter.Response) *filter.Answer {
	if x.Filters == nil {
		return nil
	}
	return x.Route.Spec().Filters.Replace(x.Filters, w)
}

// sendHead sends the head that waited for the body filters (rule 1 of
// filter/extra.go): now the filters' header changes are known, and with
// them whether the body keeps its length.
func (x *Exchange) sendHead() error {
	if !x.headPending {
		return nil
	}
	x.headPending = false
	x.LengthChanged = x.RespEdits.DroppedString("Content-Length")
	if err := x.d.Head(x); err != nil {
		return &ClientError{err}
	}
	return nil
}

// bodySink is where a body filter writes: the downstream, counted; the
// first write sends the head.
type bodySink struct{ x *Exchange }

func (s bodySink) Write(p []byte) (int, error) {
	if err := s.x.sendHead(); err != nil {
		return 0, err
	}
	s.x.BytesSent += int64(len(p))
	if err := s.x.d.Data(p); err != nil {
		return 0, &ClientError{err}
	}
	return len(p), nil
}

// filterResponseHead runs the route's response filters on the upstream's
// final head and sets up its body filters; with body filters, the head then
// waits for their first output (sendHead).
func (x *Exchange) filterResponseHead() {
	chain := x.Route.Spec().Filters
	if x.Filters == nil || chain.Empty() {
		return
	}
	w := filterResponse{x}
	chain.Response(x.Filters, w)
	if !chain.HasBody() {
		return
	}
	// Every forwarded response, a bodiless one too (rule 2 of
	// filter/extra.go: the cache learns of a 304 or a HEAD answer).
	if bw := chain.Body(x.Filters, w, bodySink{x}); bw != nil {
		x.body = bw
	}
}

// RequestEdits returns the request filters' header edits for the upstream
// request, or nil when the route has no filters.
func (x *Exchange) RequestEdits() *HeaderEdits {
	if x.Filters == nil {
		return nil
	}
	return &x.Filters.Edits
}

// closeBody ends the body filters' stream: what they hold goes to the
// client before the body ends. Safe to call more than once.
func (x *Exchange) closeBody() error {
	if x.body == nil {
		return nil
	}
	bw := x.body
	x.body = nil
	if err := bw.Close(); err != nil {
		return asClientError(err)
	}
	return x.sendHead() // a body the filters left empty
}

// abortBody drops the body filters' stream after a failure: a filter that
// can tell (a cache must not store a cut-off body) is told.
func (x *Exchange) abortBody() {
	if x.body == nil {
		return
	}
	filter.AbortBody(x.body)
	x.body = nil
}

// asClientError marks an error met while writing the body towards the
// client: through the body filters it is the client side's, not the
// upstream's, and the upstream is not blamed for it.
func asClientError(err error) error {
	if _, ok := errors.AsType[*ClientError](err); ok {
		return err
	}
	return &ClientError{err}
}

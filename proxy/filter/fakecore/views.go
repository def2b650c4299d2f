// Package fakecore is a test fake of the forwarding core's part in the
// filter contract (proxy/filter): request and response views over net/http
// types, and Core, an http.Handler that runs a chain in the core's order
// (request filters, forward, Replace, response filters, body filters,
// Close or AbortBody, Finish). It fakes only the sequencing; filters are
// tested against real upstreams (httptest) through it. It is not the core.
package fakecore

import (
	"net/http"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// Request is a filter.Request over an *http.Request. Reads see the client's
// header; changes go to Out, the header sent upstream. Not safe for
// concurrent use.
type Request struct {
	Req      *http.Request
	Out      http.Header
	RouteKey string
	IP       string
	values   map[any]any
}

// NewRequest returns the view of req for route.
func NewRequest(req *http.Request, route string) *Request {
	return &Request{Req: req, Out: req.Header.Clone(), RouteKey: route, IP: "127.0.0.1"}
}

// NewTestRequest builds a request view from a method, a target and header
// pairs ("Name", "value", ...), for unit tests of pure logic.
func NewTestRequest(method, target string, header ...string) *Request {
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		panic(err) // test input
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	req.Host = req.URL.Host
	return NewRequest(req, "test")
}

var _ filter.Request = (*Request)(nil)

func (r *Request) Method() string                    { return r.Req.Method }
func (r *Request) Host() string                      { return r.Req.Host }
func (r *Request) Path() string                      { return r.Req.URL.EscapedPath() }
func (r *Request) RawQuery() string                  { return r.Req.URL.RawQuery }
func (r *Request) Route() string                     { return r.RouteKey }
func (r *Request) ClientIP() string                  { return r.IP }
func (r *Request) Header(name string) string         { return r.Req.Header.Get(name) }
func (r *Request) HeaderValues(name string) []string { return r.Req.Header.Values(name) }
func (r *Request) SetHeader(name, value string)      { r.Out.Set(name, value) }
func (r *Request) AddHeader(name, value string)      { r.Out.Add(name, value) }
func (r *Request) DelHeader(name string)             { r.Out.Del(name) }

func (r *Request) Set(key, value any) {
	if r.values == nil {
		r.values = make(map[any]any)
	}
	r.values[key] = value
}

func (r *Request) Value(key any) any { return r.values[key] }

// Response is a filter.Response and filter.HeaderLister over an
// http.Header. Not safe for concurrent use.
type Response struct {
	Code int
	H    http.Header
}

// NewTestResponse builds a response view from a status and header pairs.
func NewTestResponse(status int, header ...string) *Response {
	h := make(http.Header)
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return &Response{Code: status, H: h}
}

var (
	_ filter.Response     = (*Response)(nil)
	_ filter.HeaderLister = (*Response)(nil)
)

func (w *Response) Status() int                       { return w.Code }
func (w *Response) Header(name string) string         { return w.H.Get(name) }
func (w *Response) HeaderValues(name string) []string { return w.H.Values(name) }
func (w *Response) SetHeader(name, value string)      { w.H.Set(name, value) }
func (w *Response) AddHeader(name, value string)      { w.H.Add(name, value) }
func (w *Response) DelHeader(name string)             { w.H.Del(name) }

// EachHeader lists the fields in a stable order (net/http's map has none).
func (w *Response) EachHeader(fn func(name, value string)) {
	keys := make([]string, 0, len(w.H))
	for k := range w.H {
		keys = append(keys, k)
	}
	sortStrings(keys)
	for _, k := range keys {
		for _, v := range w.H[k] {
			fn(k, v)
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && strings.Compare(s[j-1], s[j]) > 0; j-- {
			s[j-1], s[j] = s[j], s[j-1]
		}
	}
}

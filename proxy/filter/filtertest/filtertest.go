// Package filtertest has in-memory implementations of filter.Request and
// filter.Response for filter unit tests: pure logic, no front-end.
package filtertest

import (
	"net/http"
	"net/textproto"
)

// Request is a filter.Request over plain fields. Header is what the client
// sent (read by filters, as Client); Upstream starts as a copy of it and receives
// SetHeader/AddHeader/DelHeader, as the core's view sends changes upstream
// without showing them to later filters (Client holds what the client
// sent). Not safe for concurrent use.
type Request struct {
	M, H, P, Q, RouteName, IP string
	Client                    http.Header
	Upstream                  http.Header
	values                    map[any]any
}

// NewRequest returns a GET of path on route from client ip with the given
// header fields (name, value pairs).
func NewRequest(route, ip, path string, fields ...string) *Request {
	r := &Request{M: "GET", H: "example.com", P: path, RouteName: route, IP: ip, Client: http.Header{}}
	for i := 0; i+1 < len(fields); i += 2 {
		r.Client.Add(fields[i], fields[i+1])
	}
	r.Upstream = r.Client.Clone()
	return r
}

func (r *Request) Method() string   { return r.M }
func (r *Request) Host() string     { return r.H }
func (r *Request) Path() string     { return r.P }
func (r *Request) RawQuery() string { return r.Q }
func (r *Request) Route() string    { return r.RouteName }
func (r *Request) ClientIP() string { return r.IP }
func (r *Request) Header(name string) string {
	return r.Client.Get(name)
}
func (r *Request) HeaderValues(name string) []string {
	return r.Client.Values(name)
}
func (r *Request) SetHeader(name, value string) { r.Upstream.Set(name, value) }
func (r *Request) AddHeader(name, value string) { r.Upstream.Add(name, value) }
func (r *Request) DelHeader(name string)        { r.Upstream.Del(name) }
func (r *Request) Set(key, value any) {
	if r.values == nil {
		r.values = make(map[any]any)
	}
	r.values[key] = value
}
func (r *Request) Value(key any) any { return r.values[key] }

// Response is a filter.Response over a status and an http.Header.
type Response struct {
	Code int
	H    http.Header
}

// NewResponse returns a response head with the given fields (name, value
// pairs).
func NewResponse(code int, fields ...string) *Response {
	w := &Response{Code: code, H: http.Header{}}
	for i := 0; i+1 < len(fields); i += 2 {
		w.H.Add(fields[i], fields[i+1])
	}
	return w
}

func (w *Response) Status() int                       { return w.Code }
func (w *Response) Header(name string) string         { return w.H.Get(name) }
func (w *Response) HeaderValues(name string) []string { return w.H.Values(name) }
func (w *Response) SetHeader(name, value string)      { w.H.Set(name, value) }
func (w *Response) AddHeader(name, value string)      { w.H.Add(name, value) }
func (w *Response) DelHeader(name string)             { w.H.Del(name) }

// AnswerHeader returns the first value of name in an answer's fields.
func AnswerHeader(fields [][2]string, name string) string {
	name = textproto.CanonicalMIMEHeaderKey(name)
	for _, f := range fields {
		if textproto.CanonicalMIMEHeaderKey(f[0]) == name {
			return f[1]
		}
	}
	return ""
}

package headers

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/filtertest"
)

func TestRequestRules(t *testing.T) {
	f := New(Options{
		RequestRemove: []string{"X-Debug", "X-Env"},
		RequestSet: []Field{{"X-Env", "prod"}, {"X-Client", "{client_ip} on {route} via {host} for {service}"},
			{"X-Literal", "{not_a_variable} {"}},
		RequestAdd: []Field{{"X-Trace", "{request_id}"}, {"X-Env", "extra"}},
		Service:    "api",
	})
	r := filtertest.NewRequest("r1", "192.0.2.7", "/", "X-Debug", "1", "X-Env", "dev", "X-Request-Id", "abc\r\nInjected: 1")
	if a := f.Request(context.Background(), r); a != nil {
		t.Fatalf("got answer %+v, want none", a)
	}
	want := http.Header{
		"X-Env":        {"prod", "extra"},
		"X-Client":     {"192.0.2.7 on r1 via example.com for api"},
		"X-Literal":    {"{not_a_variable} {"},
		"X-Trace":      {"abcInjected: 1"},
		"X-Request-Id": {"abc\r\nInjected: 1"},
	}
	if !reflect.DeepEqual(r.Upstream, want) {
		t.Errorf("upstream headers: got %v, want %v", r.Upstream, want)
	}
	if r.Client.Get("X-Debug") != "1" {
		t.Error("the client's view changed; filters read the client's request")
	}
}

func TestResponseRules(t *testing.T) {
	f := New(Options{
		ResponseRemove: []string{"Server"},
		ResponseSet:    []Field{{"Strict-Transport-Security", "max-age=63072000"}, {"X-Route", "{route}"}},
		ResponseAdd:    []Field{{"Vary", "X-Canary"}},
	})
	r := filtertest.NewRequest("web", "192.0.2.7", "/")
	w := filtertest.NewResponse(200, "Server", "nginx", "Vary", "Accept-Encoding", "Strict-Transport-Security", "max-age=1")
	f.Response(r, w)
	want := http.Header{
		"Strict-Transport-Security": {"max-age=63072000"},
		"X-Route":                   {"web"},
		"Vary":                      {"Accept-Encoding", "X-Canary"},
	}
	if !reflect.DeepEqual(w.H, want) {
		t.Errorf("response headers: got %v, want %v", w.H, want)
	}
	if len(r.Upstream) != 0 {
		t.Errorf("request changed: %v", r.Upstream)
	}
}

func TestChainPlaces(t *testing.T) {
	f := New(Options{ResponseSet: []Field{{"X-A", "1"}}})
	c := filter.NewChain([]string{"headers"}, []any{f})
	if c.Empty() || c.HasBody() {
		t.Errorf("chain: got empty %v body %v, want a request and response filter only", c.Empty(), c.HasBody())
	}
}

func BenchmarkRequestConstant(b *testing.B) {
	f := New(Options{RequestSet: []Field{{"X-Env", "prod"}}, RequestRemove: []string{"X-Debug"}})
	r := filtertest.NewRequest("r", "192.0.2.1", "/")
	b.ReportAllocs()
	for b.Loop() {
		f.Request(context.Background(), r)
	}
}

func BenchmarkRequestVariables(b *testing.B) {
	f := New(Options{RequestSet: []Field{{"X-Client", "{client_ip} on {route}"}}})
	r := filtertest.NewRequest("r", "192.0.2.1", "/")
	b.ReportAllocs()
	for b.Loop() {
		f.Request(context.Background(), r)
	}
}

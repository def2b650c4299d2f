package route

import (
	"net/http"
	"testing"
)

type fakeHeaders http.Header

func (h fakeHeaders) HeaderValues(name string) []string { return http.Header(h).Values(name) }

// TestHeaderConditions: at one prefix, conditioned routes are tried in the
// order written before the one without; a prefix whose routes all have
// conditions that fail gives way to a shorter prefix.
func TestHeaderConditions(t *testing.T) {
	b := NewBuilder(nil, nil)
	tab := b.Build([]RouteSpec{
		{Name: "all", PathPrefix: "/", Service: "web"},
		{Name: "canary", PathPrefix: "/", Service: "web", Headers: []HeaderCond{{Name: "X-Canary", Values: []string{"always", "yes"}}}},
		{Name: "debug", PathPrefix: "/", Service: "web", Headers: []HeaderCond{{Name: "X-Debug"}}},
		{Name: "dup", PathPrefix: "/", Service: "web"}, // left out: same requests as "all"
		{Name: "beta", PathPrefix: "/beta", Service: "web", Headers: []HeaderCond{{Name: "X-Beta", Values: []string{"1"}}, {Name: "X-Debug"}}},
	}, nil, nil)
	for _, tc := range []struct {
		path string
		h    http.Header
		want string
	}{
		{"/x", nil, "all"},
		{"/x", http.Header{"X-Canary": {"always"}}, "canary"},
		{"/x", http.Header{"X-Canary": {"no", "yes"}}, "canary"},
		{"/x", http.Header{"X-Canary": {"Always"}}, "all"}, // values compare exactly
		{"/x", http.Header{"X-Debug": {""}, "X-Canary": {"yes"}}, "canary"},
		{"/x", http.Header{"X-Debug": {"1"}}, "debug"},
		{"/beta/1", http.Header{"X-Beta": {"1"}}, "all"}, // both conditions must hold
		{"/beta/1", http.Header{"X-Beta": {"1"}, "X-Debug": {"1"}}, "beta"},
	} {
		var h Headers
		if tc.h != nil {
			h = fakeHeaders(tc.h)
		}
		r := tab.MatchRequest("", tc.path, h)
		if r == nil || r.Spec().Name != tc.want {
			t.Errorf("%s %v: got %v, want %s", tc.path, tc.h, r, tc.want)
		}
	}
	n := 0
	tab.EachRoute(func(*Route) { n++ })
	if n != 4 {
		t.Errorf("EachRoute saw %d routes, want 4", n)
	}
}

package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/route"
)

// TestTrafficSplitAndCanary: a route splits its traffic 90/10 between the
// instances tagged v1 and v2 of one service; a route at the same prefix
// with a header condition sends X-Canary: always to v2 only; without the
// header, requests fall to the split. In both lanes. A backend whose
// instances are all unavailable gives its share to the others.
func TestTrafficSplitAndCanary(t *testing.T) {
	v1 := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v1") })
	v2 := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v2") })
	set := setOf(t, "web", addr(v1), addr(v2))
	set.Instances[0].Tags = []string{"v1"}
	set.Instances[1].Tags = []string{"v2", "canary"}
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{
		{Name: "web", PathPrefix: "/", Backends: []route.Backend{{Service: "web", Tag: "v1", Weight: 90}, {Service: "web", Tag: "v2", Weight: 10}}},
		{Name: "web-canary", PathPrefix: "/", Headers: []route.HeaderCond{{Name: "X-Canary", Values: []string{"always"}}},
			Backends: []route.Backend{{Service: "web", Tag: "v2"}}},
		{Name: "beta", PathPrefix: "/beta", Headers: []route.HeaderCond{{Name: "X-Beta"}}, Service: "web"},
	}, nil, set)

	counts := map[string]int{}
	const n = 400
	for range n {
		_, body := f.get("/x")
		counts[body]++
	}
	// The smooth weighted order gives exact shares over every cycle.
	if counts["v1"] != 360 || counts["v2"] != 40 {
		t.Errorf("split 90/10 over %d requests: %v", n, counts)
	}
	for range 20 {
		req, _ := http.NewRequest("GET", f.front.URL+"/x", nil)
		req.Header.Set("X-Canary", "always")
		if _, body := f.do(req); body != "v2" {
			t.Fatalf("X-Canary: always went to %q, want v2", body)
		}
	}
	// A condition that does not hold falls through to the split, and a
	// prefix owned only by a conditioned route to a shorter prefix.
	req, _ := http.NewRequest("GET", f.front.URL+"/x", nil)
	req.Header.Set("X-Canary", "sometimes")
	if resp, _ := f.do(req); resp.StatusCode != 200 {
		t.Errorf("X-Canary: sometimes: %d", resp.StatusCode)
	}
	if resp, _ := f.get("/beta/1"); resp.StatusCode != 200 {
		t.Errorf("/beta without X-Beta: %d, want the / route's answer", resp.StatusCode)
	}
	lines := f.accessLines(n + 22)
	var canary, beta int
	for _, l := range lines {
		if strings.Contains(l, "route=web-canary") {
			canary++
		}
		if strings.Contains(l, "route=beta") {
			beta++
		}
	}
	if canary != 20 || beta != 0 {
		t.Errorf("access log: %d canary lines (want 20), %d beta lines (want 0)", canary, beta)
	}
}

func TestTrafficSplitSkipsEmptyBackend(t *testing.T) {
	v1 := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v1") })
	set := setOf(t, "web", addr(v1))
	set.Instances[0].Tags = []string{"v1"}
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "web", PathPrefix: "/",
		Backends: []route.Backend{{Service: "web", Tag: "v1", Weight: 50}, {Service: "web", Tag: "v2", Weight: 50}}}}, nil, set)
	for range 20 {
		if resp, body := f.get("/x"); resp.StatusCode != 200 || body != "v1" {
			t.Fatalf("got %d %q: the v2 backend has no instance, its share goes to v1", resp.StatusCode, body)
		}
	}
}

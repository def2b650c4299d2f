package proxy

import (
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/core"
	"github.com/ferry-proxy/ferry/proxy/route"
)

var newID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestRequestID: every request gets an X-Request-Id upstream, back in its
// response and in the access log; an untrusted client's own is replaced, a
// trusted proxy's kept, an upstream's own relayed. In both lanes.
func TestRequestID(t *testing.T) {
	var seen atomic.Value
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Values("X-Request-Id"))
		if r.URL.Path == "/own" {
			w.Header().Set("X-Request-Id", "upstream-1")
		}
	})
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, nil, setOf(t, "s", addr(b)))

	send := func(path, id string) *http.Response {
		req, _ := http.NewRequest("GET", f.front.URL+path, nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, _ := f.do(req)
		return resp
	}
	upstream := func() []string { return seen.Load().([]string) }

	resp := send("/a", "")
	if got := upstream(); len(got) != 1 || !newID.MatchString(got[0]) || resp.Header.Get("X-Request-Id") != got[0] {
		t.Errorf("no ID: upstream saw %v, client got %q", got, resp.Header.Get("X-Request-Id"))
	}
	resp = send("/a", "client-chosen")
	if got := upstream(); len(got) != 1 || got[0] == "client-chosen" || !newID.MatchString(got[0]) || resp.Header.Get("X-Request-Id") != got[0] {
		t.Errorf("untrusted client's ID: upstream saw %v, client got %q", got, resp.Header.Get("X-Request-Id"))
	}
	if lines := f.accessLines(2); !strings.HasSuffix(lines[1], "request_id="+upstream()[0]) {
		t.Errorf("access log: %q, want request_id=%s", lines[1], upstream()[0])
	}
	resp = send("/own", "")
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "upstream-1" {
		t.Errorf("upstream's own ID: client got %v", got)
	}

	f.handler.SetEdge(core.Edge{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	resp = send("/a", "lb-42")
	if got := upstream(); len(got) != 1 || got[0] != "lb-42" || resp.Header.Get("X-Request-Id") != "lb-42" {
		t.Errorf("trusted proxy's ID: upstream saw %v, client got %q", got, resp.Header.Get("X-Request-Id"))
	}

	// ferry's own answers carry one too.
	f.route(nil, nil)
	if resp := send("/a", ""); resp.StatusCode != 404 || !newID.MatchString(resp.Header.Get("X-Request-Id")) {
		t.Errorf("404: X-Request-Id %q", resp.Header.Get("X-Request-Id"))
	}
}

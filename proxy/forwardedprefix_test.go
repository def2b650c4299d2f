package proxy

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/core"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// X-Forwarded-Prefix: a route that strips its prefix tells the upstream
// which prefix it removed, so that the upstream can build links back to
// itself (Traefik's and Spring's convention). TestMain runs these in both
// front-ends, and the h2 case checks the header survives the conversion to
// an HTTP/2 upstream.

func TestForwardedPrefixOnStrip(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{
		{Name: "users", PathPrefix: "/api/user", Service: "user", StripPrefix: true},
		{Name: "keep", PathPrefix: "/keep", Service: "user"},
		{Name: "root", PathPrefix: "/", Service: "user", StripPrefix: true},
	}, nil, setOf(t, "user", echoBackend(t, "a")))

	// prefix sends GET path with the client's own X-Forwarded-Prefix (if
	// any) and returns what the upstream got: the path and the header's
	// values.
	prefix := func(path, sent string) (string, []string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, f.front.URL+path, nil)
		if sent != "" {
			req.Header.Set("X-Forwarded-Prefix", sent)
		}
		resp, body := f.do(req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
		}
		e := decodeEcho(t, body)
		return e.RequestURI, e.Header["X-Forwarded-Prefix"]
	}
	for _, tc := range []struct {
		name, path, sent string
		wantURI          string
		want             []string
	}{
		{"stripped", "/api/user/42?x=1", "", "/42?x=1", []string{"/api/user"}},
		{"stripped to the root", "/api/user", "", "/", []string{"/api/user"}},
		{"canonical prefix", "/api//user/./7", "", "/7", []string{"/api/user"}},
		{"client's value replaced", "/api/user/1", "/evil", "/1", []string{"/api/user"}},
		{"no strip: none", "/keep/1", "", "/keep/1", nil},
		{"no strip: an untrusted client's dropped", "/keep/1", "/evil", "/keep/1", nil},
		{"strip of /: nothing removed, none", "/other", "", "/other", nil},
	} {
		uri, got := prefix(tc.path, tc.sent)
		if uri != tc.wantURI || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: upstream got %s with X-Forwarded-Prefix %q, want %s with %q", tc.name, uri, got, tc.wantURI, tc.want)
		}
	}

	// From a trusted proxy, its X-Forwarded-Prefix passes on a route that
	// strips nothing, and a stripping route still says its own prefix.
	f.handler.SetEdge(core.Edge{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if _, got := prefix("/keep/1", "/outer"); strings.Join(got, ",") != "/outer" {
		t.Errorf("trusted proxy, no strip: got %q, want its /outer", got)
	}
	if _, got := prefix("/api/user/1", "/outer"); strings.Join(got, ",") != "/api/user" {
		t.Errorf("trusted proxy, strip: got %q, want this route's /api/user", got)
	}
}

func TestForwardedPrefixToH2Upstream(t *testing.T) {
	f := newFixture(t, "text")
	be := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.Proto + " " + r.RequestURI + " prefix=" + strings.Join(r.Header["X-Forwarded-Prefix"], ",")))
	})
	f.route([]route.RouteSpec{{Name: "h", PathPrefix: "/h2", Service: "h", StripPrefix: true}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2}}, setOf(t, "h", be))
	if resp, body := f.get("/h2/a?b"); resp.StatusCode != 200 || body != "HTTP/2.0 /a?b prefix=/h2" {
		t.Errorf("h2 upstream: got %d %q, want HTTP/2.0 /a?b prefix=/h2", resp.StatusCode, body)
	}
}

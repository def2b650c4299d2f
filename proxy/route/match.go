package route

import (
	"strings"

	"github.com/ferry-proxy/ferry/proxy/wire"
)

// Match returns the route for a request's Host header and canonical path
// (see CanonicalPath), or nil. Routes for the request's host win over routes
// for any host; within a host the longest prefix wins, matched on whole
// segments: "/api/user" matches "/api/user", "/api/user/" and "/api/user/42",
// not "/api/users". The host is compared case-insensitively, without its port
// or a trailing dot.
//
// Match allocates nothing: it walks the candidate prefixes from the whole path
// down, trimming one segment at a time, with one map lookup each. It is safe
// for concurrent use.
func (t *Table) Match(host, path string) *Route {
	return t.MatchRequest(host, path, nil)
}

// MatchRequest is Match for a request whose header fields h tells (nil:
// none): at each prefix, the first route whose header conditions hold wins
// (conditioned routes are tried first, in the order written); when none
// does, shorter prefixes are tried. A table without header conditions
// never calls h.
func (t *Table) MatchRequest(host, path string, h Headers) *Route {
	if host = hostOnly(host); host != "" {
		if hr := t.lookupHost(host); hr != nil {
			if r := hr.match(path, h); r != nil {
				return r
			}
		}
	}
	if hr := t.hosts[""]; hr != nil {
		return hr.match(path, h)
	}
	return nil
}

// lookupHost finds the routes of host, lower-casing it into a stack buffer
// when needed: a map index with string(bytes) does not allocate.
func (t *Table) lookupHost(host string) *hostRoutes {
	if !hasUpper(host) {
		return t.hosts[host]
	}
	if len(host) > wire.MaxHostLen {
		return nil
	}
	var buf [wire.MaxHostLen]byte
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return t.hosts[string(buf[:len(host)])]
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// match returns the route of the longest prefix of path that ends on a
// segment boundary.
func (h *hostRoutes) match(path string, hdr Headers) *Route {
	p := path
	for len(p) > 0 {
		if len(p) <= h.maxLen {
			if r := h.prefixes[p]; r != nil {
				if r.next == nil && len(r.spec.Headers) == 0 {
					return r // the everyday case: one route, no condition
				}
				if r = r.first(hdr); r != nil {
					return r
				}
			}
		}
		if p == "/" {
			return nil
		}
		// "/api/user/42" → "/api/user"; "/api/user/" → "/api/user"; "/api" → "/".
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			p = "/"
		} else {
			p = p[:i]
		}
	}
	return nil
}

// hostOnly strips a port, IPv6 brackets and a trailing dot from a Host
// header value, without allocating.
func hostOnly(h string) string {
	if h == "" {
		return h
	}
	if h[0] == '[' {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.IndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i+1:], ':') < 0 {
		h = h[:i] // exactly one colon: host:port (a bare IPv6 address has more)
	}
	return strings.TrimSuffix(h, ".")
}

// normaliseHost is what the builder applies to RouteSpec.Host, so that route
// hosts and request hosts compare in the same form.
func normaliseHost(h string) string { return strings.ToLower(hostOnly(h)) }

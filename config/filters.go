package config

import (
	"net/textproto"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Filter kinds, as written in a route (SPEC §13).
const (
	FilterJWT       = "jwt"
	FilterRateLimit = "rate_limit"
	FilterHeaders   = "headers"
	FilterCompress  = "compress"
	FilterCache     = "cache"
)

// Filter is one filter block of a route. Exactly the field named by Kind is
// set. Range is the block's header ("jwt {"), for diagnostics of later
// stages (a JWKS file that cannot be read when the chain is built).
type Filter struct {
	Kind  string
	Range hcl.Range

	JWT       *JWT
	RateLimit *RateLimit
	Headers   *Headers
	Compress  *Compress // filters_part2.go
	Cache     *Cache    // filters_part2.go
}

// withPart2 puts a route's compress and cache blocks (decoded by
// filtersPart2) in its ordered filter list, where they were written.
func withPart2(fs []Filter, r *Route) []Filter {
	if r.Compress != nil {
		fs = append(fs, Filter{Kind: FilterCompress, Range: r.Compress.DefRange, Compress: r.Compress})
	}
	if r.Cache != nil {
		fs = append(fs, Filter{Kind: FilterCache, Range: r.Cache.DefRange, Cache: r.Cache})
	}
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Range.Start.Byte < fs[j].Range.Start.Byte })
	return fs
}

// rawFilter is a decoded filter block waiting to be put in order.
type rawFilter struct {
	at    hcl.Range
	build func(d *decoder, earlier []Filter, cfg *Config) *Filter
}

// routeFilters decodes a route's filter blocks and returns them in the order
// written. HCL decodes each block type into its own list, so the order
// across types is recovered from the blocks' positions: all of a route's
// blocks are in one file (a route is one block).
func (d *decoder) routeFilters(rr *rawRoute, cfg *Config) []Filter {
	var raws []rawFilter
	for _, b := range rr.JWT {
		raws = append(raws, rawFilter{b.DefRange, func(d *decoder, earlier []Filter, _ *Config) *Filter {
			return d.jwtFilter(b, earlier)
		}})
	}
	for _, b := range rr.RateLimit {
		raws = append(raws, rawFilter{b.DefRange, func(d *decoder, earlier []Filter, cfg *Config) *Filter {
			return d.rateLimitFilter(b, earlier, cfg)
		}})
	}
	for _, b := range rr.Headers {
		raws = append(raws, rawFilter{b.DefRange, func(d *decoder, earlier []Filter, _ *Config) *Filter {
			return d.headersFilter(b)
		}})
	}
	sort.SliceStable(raws, func(i, j int) bool { return raws[i].at.Start.Byte < raws[j].at.Start.Byte })

	var out []Filter
	for _, rf := range raws {
		if f := rf.build(d, out, cfg); f != nil {
			out = append(out, *f)
		}
	}
	return out
}

// findFilter returns the first filter of kind in fs, or nil.
func findFilter(fs []Filter, kind string) *Filter {
	for i := range fs {
		if fs[i].Kind == kind {
			return &fs[i]
		}
	}
	return nil
}

// headerName checks a header field name (an RFC 9110 token) and returns
// it in canonical form ("x-user-id" becomes "X-User-Id").
func headerName(what string) func(string) (string, error) {
	return func(s string) (string, error) {
		if s == "" {
			return "", reject("The %s must not be empty", what)
		}
		for i := 0; i < len(s); i++ {
			if !tokenChar(s[i]) {
				return "", reject("The %s %q contains %s; a header name is letters, digits and ! # $ %% & ' * + - . ^ _ ` | ~", what, s, charAt(s, i))
			}
		}
		return textproto.CanonicalMIMEHeaderKey(s), nil
	}
}

// tokenChar reports whether c may appear in an RFC 9110 token.
func tokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// framingHeaders are the fields a filter may not set or remove: they frame
// the message or the connection, which the core owns.
var framingHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Transfer-Encoding": true, "Host": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// settableHeader is headerName, refusing the framing fields.
func settableHeader(what string) func(string) (string, error) {
	check := headerName(what)
	return func(s string) (string, error) {
		name, err := check(s)
		if err != nil {
			return "", err
		}
		if framingHeaders[name] {
			return "", reject("The %s %q frames the message or connection, which ferry manages; it cannot be changed by a filter", what, name)
		}
		return name, nil
	}
}

// headerValue checks a header field value: no control characters other
// than tab, no leading or trailing white space.
func headerValue(name, v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return reject("The value of %s contains %s; header values cannot hold control characters or line breaks", name, charAt(v, i))
		}
	}
	if strings.TrimSpace(v) != v {
		return reject("The value of %s has leading or trailing white space, which HTTP drops", name)
	}
	return nil
}

// headerMap decodes a map of header names to values into an ordered
// list (sorted by name, for a stable order), each name canonical and given
// once.
func (d *decoder) headerMap(attr *hcl.Attribute, summary string, check func(k, v string) error) []HeaderValue {
	var m map[string]string
	seen := make(map[string]string)
	if !d.strMap(attr, &m, summary, func(k, v string) error {
		name, err := settableHeader("header name")(k)
		if err != nil {
			return err
		}
		if first, dup := seen[name]; dup {
			return reject("The header %q is given twice (as %q and %q); header names are case-insensitive", name, first, k)
		}
		seen[name] = k
		if err := headerValue(name, v); err != nil {
			return err
		}
		if check != nil {
			return check(name, v)
		}
		return nil
	}) {
		return nil
	}
	out := make([]HeaderValue, 0, len(m))
	for k, v := range m {
		out = append(out, HeaderValue{Name: textproto.CanonicalMIMEHeaderKey(k), Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// HeaderValue is one header field a filter sets or adds.
type HeaderValue struct {
	Name  string // canonical
	Value string // may hold variables (Headers)
}

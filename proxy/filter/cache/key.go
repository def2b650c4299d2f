package cache

import (
	"slices"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/filter"
)

// key identifies a stored resource. url is the host (lower-case) and the
// canonical path and query: what invalidation (RFC 9111 §4.4) and purge
// act on. rest holds the other parts of the primary key: the route, and
// the request fields that can change what an upstream builds links from
// without being the URL (X-Forwarded-Host, X-Forwarded-Proto, Forwarded),
// so that a request carrying them never fills the entry another request
// reads: no cache poisoning through unkeyed headers. Every other request
// field is outside the key unless the response names it in Vary.
type key struct {
	url, rest string
}

// keyedFields are the request fields in every key (see key).
var keyedFields = []string{"X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}

func requestKey(r filter.Request) key {
	var b strings.Builder
	b.WriteString(r.Route())
	for _, name := range keyedFields {
		b.WriteByte(0)
		b.WriteString(strings.Join(r.HeaderValues(name), ","))
	}
	return key{url: urlKey(r.Host(), r.Path(), r.RawQuery()), rest: b.String()}
}

// urlKey is a key's url part.
func urlKey(host, path, rawQuery string) string {
	return strings.ToLower(host) + "\x00" + path + "?" + rawQuery
}

func (k key) primary() string { return k.url + "\x00" + k.rest }

// Bounds on Vary: a response selecting on more fields, or a request whose
// selecting values are longer, is not stored (huge Vary sets would let
// one resource fill the cache with variants).
const (
	maxVaryFields   = 8
	maxVariantBytes = 4096
)

// varyNames parses Vary field values into lower-case, sorted, unique
// names; star is true for "*" (never served from cache, §4.1).
func varyNames(values []string) (names []string, star bool) {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			n := strings.ToLower(strings.TrimSpace(item))
			switch {
			case n == "":
			case n == "*":
				return nil, true
			case !slices.Contains(names, n):
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names, false
}

// variantKey is the request's values of the selecting fields, normalised
// (§4.1 allows combining field lines and dropping white space around
// commas). An absent field and an empty one select the same variant.
func variantKey(names []string, r filter.Request) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		for i, v := range r.HeaderValues(n) {
			if i > 0 {
				b.WriteByte(',')
			}
			for j, part := range strings.Split(v, ",") {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strings.TrimSpace(part))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

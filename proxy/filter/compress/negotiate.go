package compress

import (
	"strconv"
	"strings"
)

// choose picks the encoding for a request's Accept-Encoding field values
// (RFC 9110 §12.5.3): the acceptable coding with the highest q-value, ties
// going to the route's preference order (prefs). A coding the client does
// not name takes the q-value of "*" when present, else it is not
// acceptable; q=0 refuses. No Accept-Encoding at all means identity: RFC
// 9110 allows any coding then, but clients that send none (curl, health
// checks) expect none, as nginx and Envoy assume. "" when none applies.
func choose(values []string, prefs []string) string {
	if len(values) == 0 {
		return ""
	}
	var q [3]int // per preference index, in thousandths; -1 unnamed
	for i := range q {
		q[i] = -1
	}
	star := -1
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, qv, ok := parseCoding(item)
			if !ok {
				continue
			}
			if coding == "*" {
				star = qv
				continue
			}
			if coding == "x-gzip" {
				coding = "gzip"
			}
			for i, p := range prefs {
				if i < len(q) && p == coding && qv > q[i] {
					q[i] = qv
				}
			}
		}
	}
	best, bestQ := "", 0
	for i, p := range prefs {
		if i >= len(q) {
			break
		}
		v := q[i]
		if v < 0 {
			v = star
		}
		if v > bestQ {
			best, bestQ = p, v
		}
	}
	return best
}

// parseCoding parses one element of Accept-Encoding: a coding name and an
// optional ";q=" weight, returned lower-case and in thousandths (1000 when
// absent). ok is false for an empty or malformed element, which is ignored.
func parseCoding(item string) (coding string, q int, ok bool) {
	name, params, _ := strings.Cut(item, ";")
	coding = strings.ToLower(strings.TrimSpace(name))
	if coding == "" {
		return "", 0, false
	}
	q = 1000
	for p := range strings.SplitSeq(params, ";") {
		k, v, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1 {
			return "", 0, false
		}
		q = int(f*1000 + 0.5)
	}
	return coding, q, true
}

// typeMatcher matches a Content-Type against the route's media types:
// exact types and "major/*" ranges.
type typeMatcher struct {
	exact  map[string]bool
	majors map[string]bool // "text" for "text/*"
}

func newTypeMatcher(types []string) typeMatcher {
	m := typeMatcher{exact: make(map[string]bool), majors: make(map[string]bool)}
	for _, t := range types {
		t = strings.ToLower(t)
		if major, ok := strings.CutSuffix(t, "/*"); ok {
			m.majors[major] = true
			continue
		}
		m.exact[t] = true
	}
	return m
}

// mediaType is the lower-case type/subtype of a Content-Type value,
// without parameters; "" when there is none.
func mediaType(contentType string) string {
	t, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

func (m typeMatcher) match(t string) bool {
	if t == "" {
		return false
	}
	if m.exact[t] {
		return true
	}
	major, _, ok := strings.Cut(t, "/")
	return ok && m.majors[major]
}

// hasToken reports whether a comma-separated field (Cache-Control, Vary)
// has the token, ignoring case and any "=value".
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			name, _, _ := strings.Cut(item, "=")
			if strings.EqualFold(strings.TrimSpace(name), token) {
				return true
			}
		}
	}
	return false
}

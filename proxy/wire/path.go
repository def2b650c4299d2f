package wire

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadPath is wrapped by every error CanonicalPath returns; the handler
// answers such requests with 400 and never forwards them.
var ErrBadPath = errors.New("bad request path")

// The reasons are package-level values so that rejecting a hostile path
// allocates nothing.
var (
	errNotAbsolute  = fmt.Errorf("%w: does not start with \"/\"", ErrBadPath)
	errControl      = fmt.Errorf("%w: control character", ErrBadPath)
	errBackslash    = fmt.Errorf("%w: backslash", ErrBadPath)
	errEncodedSlash = fmt.Errorf("%w: encoded \"/\" or \"\\\"", ErrBadPath)
	errBadEscape    = fmt.Errorf("%w: malformed percent-encoding", ErrBadPath)
	errFragment     = fmt.Errorf("%w: \"#\"", ErrBadPath)
	errDotParams    = fmt.Errorf("%w: dot segment with parameters (\"..;\")", ErrBadPath)
)

// CanonicalPath returns the canonical form of an escaped request path (as
// from url.URL.EscapedPath), the one form ferry both routes on and forwards,
// so that a route cannot be bypassed by a path that the upstream reads
// differently than ferry did.
//
// It rejects control characters (raw or encoded), a backslash, a raw "#"
// and an encoded "/" or "\" (%2F, %5C), because upstreams disagree on whether
// those separate segments, and a "." or ".." segment carrying parameters
// (".;x", "..;x", encoded dots included), which servlet containers such as
// Tomcat read as a dot segment. It decodes escapes of unreserved characters (ALPHA DIGIT - . _ ~),
// upper-cases the hex digits of every other escape and percent-encodes raw
// bytes that are not allowed in a path; then it removes "." and ".." segments
// (encoded ones included, since they decode to unreserved characters) as RFC
// 3986 §5.2.4 does, never climbing above the root, and merges repeated
// slashes. Case and a trailing slash are kept. An empty path is "/".
//
// An already canonical path is returned as is, without allocating.
// CanonicalPath is a pure function, safe for concurrent use.
func CanonicalPath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", errNotAbsolute
	}
	if isCanonical(escaped) {
		return escaped, nil
	}
	normal, err := normaliseEscapes(escaped)
	if err != nil {
		return "", err
	}
	return removeDotSegments(normal)
}

// isCanonical reports whether s (starting with "/") needs no work: only
// characters allowed raw in a path, no escape at all, no empty, "." or ".."
// segment except an empty last one (the trailing slash).
func isCanonical(s string) bool {
	segStart := 1
	for i := 1; i <= len(s); i++ {
		if i < len(s) {
			c := s[i]
			if c != '/' {
				if !rawPathChar(c) {
					return false
				}
				continue
			}
		}
		// s[segStart:i] is a whole segment.
		switch seg := s[segStart:i]; {
		case seg == "":
			if i < len(s) { // an empty segment that is not the last: "//"
				return false
			}
		case seg[0] == '.' && (len(seg) == 1 || seg[1] == '.' || seg[1] == ';'):
			return false // ".", "..", ".;x", "..x": let the slow path judge
		}
		segStart = i + 1
	}
	return true
}

// rawPathChar reports whether c may appear unescaped in a canonical path
// segment: RFC 3986 pchar without pct-encoded (unreserved, sub-delims, ":"
// and "@").
func rawPathChar(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

const UpperHex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normaliseEscapes validates s and rewrites every byte and escape into its
// canonical spelling; segment structure is left to removeDotSegments.
func normaliseEscapes(s string) (string, error) {
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/' || rawPathChar(c):
			b = append(b, c)
		case isControl(c):
			return "", errControl
		case c == '\\':
			return "", errBackslash
		case c == '#':
			return "", errFragment
		case c == '%':
			if i+2 >= len(s) {
				return "", errBadEscape
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", errBadEscape
			}
			i += 2
			v := hi<<4 | lo
			switch {
			case isControl(v):
				return "", errControl
			case v == '/' || v == '\\':
				return "", errEncodedSlash
			case unreserved(v):
				b = append(b, v)
			default:
				b = append(b, '%', UpperHex[v>>4], UpperHex[v&15])
			}
		default:
			// Not allowed raw in a path (space, '"', '<', non-ASCII, …):
			// the canonical form carries it encoded.
			b = append(b, '%', UpperHex[c>>4], UpperHex[c&15])
		}
	}
	return string(b), nil
}

// removeDotSegments applies RFC 3986 §5.2.4 to s (which starts with "/" and
// contains no encoded dots any more), merging empty segments on the way. A
// ".." at the root stays at the root. A path whose last segment is empty, "."
// or ".." ends with a slash, as the RFC's algorithm produces.
func removeDotSegments(s string) (string, error) {
	out := make([]byte, 0, len(s))
	trailing := false
	rest := s[1:]
	for {
		seg, more := rest, false
		for i := 0; i < len(rest); i++ {
			if rest[i] == '/' {
				seg, rest, more = rest[:i], rest[i+1:], true
				break
			}
		}
		last := !more
		switch seg {
		case "", ".":
			trailing = last
		case "..":
			if i := lastSlash(out); i >= 0 {
				out = out[:i]
			}
			trailing = last
		default:
			if isDotWithParams(seg) {
				return "", errDotParams
			}
			out = append(out, '/')
			out = append(out, seg...)
			trailing = false
		}
		if last {
			break
		}
	}
	if len(out) == 0 {
		return "/", nil
	}
	if trailing {
		out = append(out, '/')
	}
	return string(out), nil
}

// isDotWithParams reports whether seg is "." or ".." followed by ";"
// parameters.
func isDotWithParams(seg string) bool {
	return strings.HasPrefix(seg, ".;") || strings.HasPrefix(seg, "..;")
}

func lastSlash(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '/' {
			return i
		}
	}
	return -1
}

// StripPrefix removes a route's prefix from a canonical path that matched it
// on a segment boundary: "/api/user/42" → "/42", "/api/user" → "/".
func StripPrefix(path, prefix string) string {
	if prefix == "/" || len(path) < len(prefix) {
		return path
	}
	if rest := path[len(prefix):]; rest != "" {
		return rest
	}
	return "/"
}

package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The checks here are pure functions of one value. A check's error (from
// reject) is the detail of a diagnostic: a sentence, without its final
// period, saying what is allowed. Checks that normalise return the normal
// form.

// reject returns a check's error: a whole sentence, capitalised since it
// becomes a diagnostic's detail as it is (with a final period).
func reject(format string, args ...any) error {
	return invalidError(fmt.Sprintf(format, args...))
}

// invalidError is the detail of a diagnostic about an invalid value.
type invalidError string

func (e invalidError) Error() string { return string(e) }

// hostPort checks a listen address: host:port with a numeric port, the host
// possibly empty (all interfaces) or a bracketed IPv6 address. what names
// the value ("The listen address must ...").
func hostPort(what string) func(string) (string, error) {
	return func(s string) (string, error) {
		host, port, err := net.SplitHostPort(s)
		if err != nil || hasSpaceOrControl(host) {
			return "", reject("The %s must be a host and port such as %q or %q, not %q", what, "127.0.0.1:8080", ":8080", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return "", reject("The port of the %s must be a number from 0 to 65535 (0 picks a free port), not %q", what, port)
		}
		return s, nil
	}
}

// adminAddress is hostPort, but "" (no admin API) is allowed.
func adminAddress(s string) (string, error) {
	if s == "" {
		return s, nil
	}
	if _, err := hostPort("admin address")(s); err != nil {
		return "", reject(`%s; "" disables the admin API`, err)
	}
	return s, nil
}

// pathPrefix checks a route's path_prefix and returns it without a trailing
// "/" (unless it is "/"): "/api/" and "/api" are the same prefix, both
// matching "/api", "/api/" and "/api/x" but not "/apix", because matching is
// on whole path segments.
//
// The prefix must be what the proxy routes on, a canonical escaped path (see
// proxy.CanonicalPath): it starts with "/", has no empty ("//"), "." or ".."
// segment, and uses only characters allowed unescaped in a URL path. So no
// "%" (a prefix is written decoded), "?", "#", backslash, white space,
// control or non-ASCII character.
func pathPrefix(s string) (string, error) {
	if s == "" {
		return "", reject(`The path_prefix must not be empty; use "/" to match every path`)
	}
	if s[0] != '/' {
		return "", reject(`The path_prefix must be an absolute path starting with "/", such as "/api", not %q`, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '/' && !pathChar(c) {
			return "", reject("The path_prefix %q contains %s, which a route cannot match; "+
				"allowed are letters, digits, \"/\" and - . _ ~ ! $ & ' ( ) * + , ; = : @", s, charAt(s, i))
		}
	}
	if strings.Contains(s, "//") {
		return "", reject(`The path_prefix %q contains "//"; write each "/" once`, s)
	}
	trimmed := s
	if len(trimmed) > 1 {
		trimmed = strings.TrimSuffix(trimmed, "/")
	}
	for _, seg := range strings.Split(trimmed, "/") {
		if seg == "." || seg == ".." {
			return "", reject(`The path_prefix %q contains a %q segment; write the path without "." and ".." segments`, s, seg)
		}
	}
	return trimmed, nil
}

// pathChar reports whether c may appear unescaped in a canonical path
// segment: RFC 3986 unreserved characters and sub-delims, ":" and "@".
func pathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@", c) >= 0
}

// maxHostLen is the longest DNS name; a longer Host cannot be routed.
const maxHostLen = 253

// routeHost checks a route's host and returns it in the form the proxy
// compares request hosts in: lower-case, without a trailing dot, an IPv6
// address without brackets. "" (any host) is allowed.
func routeHost(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	h := strings.ToLower(s)
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if strings.Contains(h, ":") {
		if addr, err := netip.ParseAddr(h); err == nil && addr.Is6() && addr.Zone() == "" {
			return addr.String(), nil
		}
		return "", reject("The host %q must be a host name or IP address without a port; a route matches the Host header on any port", s)
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > maxHostLen {
		return "", reject("The host must be a host name of 1 to %d characters, not %q", maxHostLen, s)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return "", reject("The host %q has an empty label (\"..\" or a leading \".\")", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", reject("The host %q contains %s; a host is a DNS name (letters, digits, \"-\", \"_\" and \".\", "+
					"without a port, path or wildcard) or an IP address", s, charAt(label, i))
			}
		}
	}
	return h, nil
}

// consulName checks a Consul service name (what.. is "service", "route"...).
func consulName(what string) func(string) error {
	return func(s string) error {
		if s == "" {
			return reject("The %s name must not be empty", what)
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
				return reject("The %s name %q contains %s; allowed are letters, digits, \"-\", \"_\" and \".\"", what, s, charAt(s, i))
			}
		}
		return nil
	}
}

// normalising adapts a plain check to the string decoder.
func normalising(check func(string) error) func(string) (string, error) {
	return func(s string) (string, error) {
		if err := check(s); err != nil {
			return "", err
		}
		return s, nil
	}
}

// healthPath checks the request target of an active health check: an
// absolute path, possibly with a query.
func healthPath(s string) (string, error) {
	if !strings.HasPrefix(s, "/") || hasSpaceOrControl(s) || strings.ContainsRune(s, '#') {
		return "", reject(`The path must be an absolute request path (with an optional query) such as "/health", without spaces or "#", not %q`, s)
	}
	return s, nil
}

// noSpace checks a free-form value that must not contain white space or
// control characters.
func noSpace(what string) func(string) (string, error) {
	return func(s string) (string, error) {
		if hasSpaceOrControl(s) || !utf8.ValidString(s) {
			return "", reject("The %s must not contain white space or control characters, not %q", what, s)
		}
		return s, nil
	}
}

// accessLog checks log.access_log: stdout, stderr, off or a file path.
func accessLog(s string) (string, error) {
	if s == "" || strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s) {
		return "", reject(`The access_log must be "stdout", "stderr", "off" or a file path, not %q`, s)
	}
	return s, nil
}

// snapshotPath checks consul.snapshot_file: "" (no snapshot) or a file path.
func snapshotPath(s string) (string, error) {
	if strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s) || strings.HasSuffix(s, "/") {
		return "", reject(`The snapshot_file must be a file path (or "" for none), not %q`, s)
	}
	return s, nil
}

// serviceID checks local_service.id: "" (the default) or an ID usable in
// Consul's agent API paths.
func serviceID(s string) (string, error) {
	if hasSpaceOrControl(s) || strings.Contains(s, "/") || !utf8.ValidString(s) {
		return "", reject(`The id must not contain "/", white space or control characters, not %q; "" picks name-hostname-port`, s)
	}
	return s, nil
}

// serviceAddress checks local_service.address: "" (the agent's address) or a
// host name or IP address without a port.
func serviceAddress(s string) (string, error) {
	if s == "" {
		return s, nil
	}
	bad := reject("The address must be a host name or IP address without a port (set port separately), not %q", s)
	if hasSpaceOrControl(s) || strings.ContainsAny(s, "/[]@?#") {
		return "", bad
	}
	if strings.Contains(s, ":") {
		if _, err := netip.ParseAddr(s); err != nil {
			return "", bad
		}
	}
	return s, nil
}

// serviceTag checks one element of local_service.tags.
func serviceTag(s string) error {
	if s == "" || strings.ContainsFunc(s, unicode.IsControl) || !utf8.ValidString(s) {
		return reject("A tag must be a non-empty string without control characters, not %q", s)
	}
	return nil
}

// Consul's limits on service metadata (agent/structs.ValidateServiceMetadata).
const (
	maxMetaPairs    = 64
	maxMetaKeyLen   = 128
	maxMetaValueLen = 512
)

// metaPair checks one local_service.meta pair against Consul's rules.
func metaPair(k, v string) error {
	switch {
	case k == "" || len(k) > maxMetaKeyLen:
		return reject("A meta key must be 1 to %d characters, not %q", maxMetaKeyLen, k)
	case strings.HasPrefix(k, "consul-"):
		return reject("The meta key %q uses the prefix \"consul-\", which Consul reserves", k)
	case strings.ContainsFunc(k, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_'))
	}):
		return reject("The meta key %q may contain only letters, digits, \"-\" and \"_\"", k)
	case len(v) > maxMetaValueLen:
		return reject("The value of meta key %q must be at most %d characters", k, maxMetaValueLen)
	}
	return nil
}

// checkHTTP checks local_service.check.http: an absolute http(s) URL.
func checkHTTP(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || hasSpaceOrControl(s) {
		return "", reject("The http must be an http:// or https:// URL such as %q, not %q", "http://127.0.0.1:9002/health", s)
	}
	return s, nil
}

// checkTCP checks local_service.check.tcp: host:port with a port from 1 to
// 65535.
func checkTCP(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || hasSpaceOrControl(host) || perr != nil || n < 1 || n > 65535 {
		return "", reject("The tcp must be a host and a port from 1 to 65535, such as %q, not %q", "127.0.0.1:9002", s)
	}
	return s, nil
}

// hasSpaceOrControl reports whether s contains white space or a control
// character.
func hasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
}

// charAt quotes the character at byte i of s for a message: the rune, or the
// byte in hex when s is not valid UTF-8 there.
func charAt(s string, i int) string {
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[i])
	}
	return strconv.Quote(string(r))
}

package wire

import "bytes"

// The fast lane (see server.go) serves the everyday request itself and hands
// anything else, untouched, to net/http and the Handler. parseHead decides
// which is which. It accepts only a strict subset of HTTP/1.1 that it can
// forward exactly as the Handler would: a request head it accepts would
// reach the same route and upstream, with the same path, query and headers
// (less hop-by-hop ones), through either lane. Every refusal a hostile or
// unusual request deserves is left to the Handler and the connection guard,
// so both lanes answer bad input alike.

// maxFastFields bounds the header fields of a request the fast lane serves;
// a request with more goes to the Handler (which applies max_header_count).
const maxFastFields = 64

// field is one header line of a parsed head, as slices of the read buffer.
type field struct {
	Name, Value []byte
	Kind        fieldKind
}

// fieldKind says how the fast lane forwards a request header field.
type fieldKind uint8

const (
	fieldPlain     fieldKind = iota // forwarded as is
	FieldHopByHop                   // dropped (Connection, Keep-Alive, ...)
	FieldForwarded                  // X-Forwarded-*, Forwarded, X-Real-IP: by trust
	fieldHost                       // Host: forwarded as is, routes the request
)

// reqHead is a request head the fast lane serves. Its slices point into the
// connection's read buffer and are valid until the request ends.
type RequestHead struct {
	Method        string // one of the constants of fastMethods
	Path          []byte // the raw (escaped) path of an origin-form target
	Query         []byte // the raw query, without "?"
	HasQuery      bool
	Host          []byte
	ContentLength int64 // 0 without a body
	Close         bool  // the client sent "Connection: close"
	NFields       int
	Size          int // bytes of the head, final CRLF included
	// Last, so that the scalars above share a cache line (see
	// ResponseHead).
	Fields [maxFastFields]field
}

// headVerdict is parseHead's answer.
type headVerdict uint8

const (
	HeadIncomplete headVerdict = iota // no complete head in the buffer yet
	HeadFast                          // served by the fast lane
	HeadHandoff                       // anything else: the Handler serves it
)

// fastMethods are the methods the fast lane forwards; others (CONNECT, TRACE,
// extension methods) go to the Handler.
var fastMethods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}

// parseHead parses the request head at the start of b. maxFields (> 0) and
// maxBytes (> 0) are the limits block's: a head beyond either goes to the
// Handler, which answers 431.
func ParseRequestHead(b []byte, h *RequestHead, maxFields, maxBytes int) headVerdict {
	end := bytes.Index(b, crlf2)
	if end < 0 {
		if len(b) > 0 && !plausibleStart(b) || hasBareLF(b) {
			return HeadHandoff // not worth waiting for: let net/http judge it
		}
		return HeadIncomplete
	}
	size := end + 4
	if size > maxBytes {
		return HeadHandoff
	}
	h.Size = size
	head := b[:end+2] // every line with its CRLF

	// Request line: METHOD SP origin-form SP HTTP/1.1 CRLF.
	nl := bytes.IndexByte(head, '\n')
	line := head[:nl]
	if len(line) < 2 || line[len(line)-1] != '\r' {
		return HeadHandoff
	}
	line = line[:len(line)-1]
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return HeadHandoff
	}
	method := methodOf(line[:sp])
	if method == "" {
		return HeadHandoff
	}
	h.Method = method
	rest := line[sp+1:]
	const version = " HTTP/1.1"
	if len(rest) < len(version)+1 || string(rest[len(rest)-len(version):]) != version {
		return HeadHandoff // HTTP/1.0 and anything odd
	}
	target := rest[:len(rest)-len(version)]
	if !splitTarget(target, h) {
		return HeadHandoff
	}

	// Header fields.
	h.NFields, h.ContentLength, h.Close, h.Host = 0, 0, false, nil
	hosts, lengths := 0, 0
	for p := head[nl+1:]; len(p) > 0; {
		nl := bytes.IndexByte(p, '\n')
		line := p[:nl]
		p = p[nl+1:]
		if len(line) < 2 || line[len(line)-1] != '\r' {
			return HeadHandoff // bare LF
		}
		line = line[:len(line)-1]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || h.NFields == maxFastFields || (maxFields > 0 && h.NFields == maxFields) {
			return HeadHandoff // obs-fold, no name, too many fields
		}
		name := line[:colon]
		if !isToken(name) {
			return HeadHandoff // underscores and bad names: the Handler refuses them
		}
		value := TrimOWS(line[colon+1:])
		if !ValidValue(value) {
			return HeadHandoff
		}
		kind := fieldPlain
		switch Classify(name) {
		case nameTE, nameExpect, NameUpgrade, nameTrailer, nameHTTP2Settings, nameTransferEncoding:
			// 100-continue, upgrades, chunked uploads: the Handler does them.
			return HeadHandoff
		case nameHost:
			hosts++
			if hosts > 1 || !validHost(value) {
				return HeadHandoff
			}
			h.Host, kind = value, fieldHost
		case NameConnection:
			if !connectionTokens(value, h) {
				return HeadHandoff // nominates other fields: rare, the Handler does it
			}
			kind = FieldHopByHop
		case nameKeepAlive, nameProxyConnection, nameProxyAuthenticate, nameProxyAuthorization:
			kind = FieldHopByHop
		case nameForwarded, nameXRealIP, nameXForwardedFor, nameXForwardedHost, nameXForwardedProto, nameXForwardedPrefix:
			kind = FieldForwarded
		case nameContentLength:
			lengths++
			n, ok := decimal(value)
			if lengths > 1 || !ok {
				return HeadHandoff
			}
			h.ContentLength = n
		}
		h.Fields[h.NFields] = field{Name: name, Value: value, Kind: kind}
		h.NFields++
	}
	if hosts != 1 {
		return HeadHandoff
	}
	return HeadFast
}

// plausibleStart reports whether b can begin a head the fast lane serves, so
// that a client that starts with anything else is handed over at once.
func plausibleStart(b []byte) bool {
	for i, c := range b {
		if c == ' ' {
			return i > 0
		}
		if c < 'A' || c > 'Z' || i >= 7 {
			return false
		}
	}
	return true
}

// hasBareLF reports whether a line of b ends in LF without CR (such a head
// never ends in CRLFCRLF).
func hasBareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

func methodOf(b []byte) string {
	for _, m := range fastMethods {
		if string(b) == m {
			return m
		}
	}
	return ""
}

// splitTarget accepts an origin-form target ("/path?query") of the plainest
// kind: unreserved characters, "$&+,;=:@/" and well-formed escapes in the
// path; in the query also "!'()*?", but no ";" and no character that a URL
// must escape. Anything else is handed to net/http, whose lane forwards the
// query byte for byte through the same core (FuzzParseHead checks that both
// parsers read what the fast lane accepts alike).
func splitTarget(t []byte, h *RequestHead) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	path, query := t, []byte(nil)
	hasQuery := false
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		path, query, hasQuery = t[:i], t[i+1:], true
	}
	if !validEscaped(path, false) || !validEscaped(query, true) {
		return false
	}
	h.Path, h.Query, h.HasQuery = path, query, hasQuery
	return true
}

func validEscaped(s []byte, query bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case unreserved(c):
		case c == '%':
			if i+2 >= len(s) {
				return false
			}
			if _, ok := unhex(s[i+1]); !ok {
				return false
			}
			if _, ok := unhex(s[i+2]); !ok {
				return false
			}
			i += 2
		case c == '$' || c == '&' || c == '+' || c == ',' || c == '=' || c == ':' || c == '@' || c == '/':
		case c == '!' || c == '\'' || c == '(' || c == ')' || c == '*':
			// url.URL escapes these in a path it re-encodes: the Handler
			// forwards them as it does.
			if !query {
				return false
			}
		case c == ';':
			if query {
				return false
			}
		case c == '?':
			if !query {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token without "_" (a header name
// with an underscore is refused by the Handler).
func isToken(b []byte) bool {
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^`|~" {
		t[c] = true
	}
	return t
}()

// ValidValue reports whether a field value holds only visible characters,
// spaces, tabs and obs-text: no NUL, CR or other control.
func ValidValue(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts a Host of letters, digits, ".", "-", ":" and IPv6
// brackets; anything else goes to the Handler, which checks it as net/http
// does.
func validHost(b []byte) bool {
	if len(b) == 0 || len(b) > MaxHostLen {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// connectionTokens accepts a Connection value made of "keep-alive" and
// "close" only, recording close.
func connectionTokens(v []byte, h *RequestHead) bool {
	for len(v) > 0 {
		var tok []byte
		tok, v = nextToken(v)
		switch {
		case len(tok) == 0, equalFold(tok, "keep-alive"):
		case equalFold(tok, "close"):
			h.Close = true
		default:
			return false
		}
	}
	return true
}

func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with lower, which is lower-case ASCII.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// MaxHostLen bounds the stack buffer Match lower-cases a host into; a longer
// Host header cannot name a route (DNS names are at most 253 bytes).
const MaxHostLen = 255

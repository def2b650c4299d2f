package wire

import "bytes"

// fieldName is a header field the fast lane's request and response parsers
// treat specially. classify finds it by length and then case-insensitive
// comparison, which costs a few nanoseconds per field and allocates nothing.
type fieldName uint8

const (
	nameOther fieldName = iota
	NameConnection
	nameContentLength
	nameDate
	nameExpect
	nameForwarded
	nameHost
	nameHTTP2Settings
	nameKeepAlive
	nameProxyAuthenticate
	nameProxyAuthorization
	nameProxyConnection
	nameTE
	nameTrailer
	nameTransferEncoding
	NameUpgrade
	nameXForwardedFor
	nameXForwardedHost
	nameXForwardedProto
	nameXForwardedPrefix
	nameXRealIP
)

// namesByLength lists the special names, lower-case, by length.
var namesByLength = func() (t [20][]struct {
	lower string
	name  fieldName
}) {
	for lower, name := range map[string]fieldName{
		"connection": NameConnection, "content-length": nameContentLength, "date": nameDate,
		"expect": nameExpect, "forwarded": nameForwarded, "host": nameHost,
		"http2-settings": nameHTTP2Settings, "keep-alive": nameKeepAlive,
		"proxy-authenticate": nameProxyAuthenticate, "proxy-authorization": nameProxyAuthorization,
		"proxy-connection": nameProxyConnection, "te": nameTE, "trailer": nameTrailer,
		"transfer-encoding": nameTransferEncoding, "upgrade": NameUpgrade,
		"x-forwarded-for": nameXForwardedFor, "x-forwarded-host": nameXForwardedHost,
		"x-forwarded-proto": nameXForwardedProto, "x-forwarded-prefix": nameXForwardedPrefix, "x-real-ip": nameXRealIP,
	} {
		t[len(lower)] = append(t[len(lower)], struct {
			lower string
			name  fieldName
		}{lower, name})
	}
	return t
}()

func Classify(name []byte) fieldName {
	if len(name) >= len(namesByLength) {
		return nameOther
	}
	for _, n := range namesByLength[len(name)] {
		if equalFold(name, n.lower) {
			return n.name
		}
	}
	return nameOther
}

// nextToken splits the first element off a comma-separated field value
// ("close, X-Secret"), without its optional white space; an empty element
// is returned as such.
func nextToken(v []byte) (tok, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return TrimOWS(v[:i]), v[i+1:]
	}
	return TrimOWS(v), nil
}

var (
	httpPrefix = []byte("HTTP/1.")
	crlf2      = []byte("\r\n\r\n")
)

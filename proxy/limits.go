package proxy

import (
	"net/http"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// refusal is a request refused before routing: a status and a fixed body.
type refusal struct {
	code int
	msg  string
}

// refusals by guard reason (see guard.go); package-level so that refusing
// allocates nothing.
var refusals = [...]refusal{
	wire.RefuseCLAndTE:        {http.StatusBadRequest, "ferry: bad request: both Content-Length and Transfer-Encoding"},
	wire.RefuseTEOnHTTP10:     {http.StatusBadRequest, "ferry: bad request: Transfer-Encoding in an HTTP/1.0 request"},
	wire.RefuseDuplicateCL:    {http.StatusBadRequest, "ferry: bad request: more than one Content-Length"},
	wire.RefuseObsFold:        {http.StatusBadRequest, "ferry: bad request: folded header line"},
	wire.RefuseUnderscore:     {http.StatusBadRequest, "ferry: bad request: header name with an underscore"},
	wire.RefuseFragment:       {http.StatusBadRequest, "ferry: bad request: fragment in the request target"},
	wire.RefuseTooManyHeaders: {http.StatusRequestHeaderFieldsTooLarge, "ferry: too many header fields"},
	wire.RefuseUnjudged:       {http.StatusBadRequest, "ferry: bad request: framing that cannot be judged"},
	wire.RefuseBadCoding:      {http.StatusNotImplemented, "ferry: unsupported transfer coding"},
	wire.RefuseEmptyHost:      {http.StatusBadRequest, "ferry: bad request: empty Host"},
	wire.RefuseHeadTooLarge:   {http.StatusRequestHeaderFieldsTooLarge, "ferry: request head too large"},
}

var (
	refuseAsterisk = refusal{http.StatusBadRequest, "ferry: bad request: request target \"*\""}
	refuseHash     = refusals[wire.RefuseFragment]
	refuseUpgrade  = refusal{http.StatusBadRequest, "ferry: bad request"}
)

// admit checks what routing does not: the connection guard's verdict on the
// request's head, and the request target's form. It returns the refusal,
// if any; a refused request is answered with Connection: close. It also
// drops an Upgrade offer other than WebSocket (h2c included), answering as
// a server that does not speak the protocol. It allocates nothing.
func admit(r *http.Request) (refusal, bool) {
	if gc := guardConnFrom(r.Context()); gc != nil {
		if reason := gc.verdict(); reason != wire.RefuseNone {
			return refusals[reason], false
		}
	}
	if r.RequestURI == "*" {
		return refuseAsterisk, false
	}
	if strings.IndexByte(r.RequestURI, '#') >= 0 {
		return refuseHash, false
	}
	if up, ok := r.Header["Upgrade"]; ok && !webSocketOnly(up) {
		if !printable(up) {
			return refuseUpgrade, false
		}
		// Only WebSocket upgrades are tunnelled. Without its Upgrade header
		// the request is plain HTTP/1.1 ("Connection: Upgrade" and
		// "HTTP2-Settings" are hop-by-hop and dropped by the proxy).
		delete(r.Header, "Upgrade")
	}
	return refusal{}, true
}

func printable(values []string) bool {
	for _, v := range values {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] >= 0x7f {
				return false
			}
		}
	}
	return true
}

func webSocketOnly(values []string) bool {
	return len(values) == 1 && strings.EqualFold(strings.TrimSpace(values[0]), "websocket")
}

// limitBody cuts a body of unknown length (chunked) off at the route's
// MaxBodyBytes; the core then answers 413 (see exchange.clientBodyFailed).
// A declared Content-Length above it was answered by planRequest. w is the
// server's writer, which MaxBytesReader tells to close the connection.
func limitBody(w http.ResponseWriter, r *http.Request, route *route.Route) {
	if limit := route.Spec().MaxBodyBytes; limit > 0 && r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
}

package proxy

import (
	"github.com/ferry-proxy/ferry/proxy/wire"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// appendFastRequest appends the outbound head of a fast-lane request: the
// canonical path (less the prefix when the route strips it), the query byte
// for byte, the client's fields in its order and spelling less hop-by-hop
// ones, and X-Forwarded-* (replaced unless the peer is a trusted proxy; see
// Edge), followed by the body read so far.
func appendFastRequest(b []byte, x *core.Exchange, h *wire.RequestHead, c *fastConn) []byte {
	b = append(b, h.Method...)
	b = append(b, ' ')
	b = appendTarget(b, x)
	if h.HasQuery {
		b = append(b, '?')
		b = append(b, h.Query...)
	}
	b = append(b, " HTTP/1.1\r\n"...)
	trusted := c.isTrusted()
	edits := x.RequestEdits()
	var xff, xfh, xfp bool
	for i := 0; i < h.NFields; i++ {
		f := &h.Fields[i]
		if edits != nil && edits.Dropped(f.Name) || c.reqIDNew && isRequestIDField(f.Name) {
			continue // a filter's removal; an untrusted client's request ID, replaced below
		}
		switch f.Kind {
		case wire.FieldHopByHop:
			continue
		case wire.FieldForwarded:
			if !trusted {
				continue
			}
			switch len(f.Name) {
			case len("X-Forwarded-For"):
				xff = true
				continue // joined below
			case len("X-Forwarded-Host"):
				xfh = true
			case len("X-Forwarded-Proto"):
				xfp = true
			case len("X-Forwarded-Prefix"):
				if x.Route.Spec().StripPrefix {
					continue // replaced by this route's prefix below
				}
			}
		}
		b = wire.AppendHeaderLine(b, f.Name, f.Value)
	}
	b = append(b, "X-Forwarded-For: "...)
	if xff && !edits.DroppedString("X-Forwarded-For") {
		for i := 0; i < h.NFields; i++ {
			if f := &h.Fields[i]; f.Kind == wire.FieldForwarded && len(f.Name) == len("X-Forwarded-For") {
				b = append(b, f.Value...)
				b = append(b, ", "...)
			}
		}
	}
	b = append(b, c.clientIP...)
	b = append(b, "\r\n"...)
	if !xfh {
		b = wire.AppendHeaderLine(b, []byte("X-Forwarded-Host"), h.Host)
	}
	if !xfp {
		if c.gc.overTLS() {
			b = append(b, "X-Forwarded-Proto: https\r\n"...)
		} else {
			b = append(b, "X-Forwarded-Proto: http\r\n"...)
		}
	}
	b = appendStripped(b, x)
	if c.reqIDNew {
		b = wire.AppendHeaderLine(b, requestIDName, c.reqID)
	}
	b = appendAdded(b, edits)
	b = append(b, "\r\n"...)
	return append(b, x.BodyHead...)
}

// appendTarget appends the outbound path: the canonical path, less the
// route's prefix when it strips it. Both lanes use it.
func appendTarget(b []byte, x *core.Exchange) []byte {
	path := x.Path
	if x.Route.Spec().StripPrefix {
		path = wire.StripPrefix(path, x.Route.Spec().PathPrefix)
	}
	return append(b, path...)
}

// appendAdded appends the fields request filters added (nil: none).
func appendAdded(b []byte, edits *core.HeaderEdits) []byte {
	for _, f := range edits.Added() {
		if !wire.ValidField(f[0], f[1]) {
			continue // a value that would break the head (a claim with a CR LF)
		}
		b = append(b, f[0]...)
		b = append(b, ": "...)
		b = append(b, f[1]...)
		b = append(b, "\r\n"...)
	}
	return b
}

// appendStripped appends X-Forwarded-Prefix when the route strips its
// prefix, so that the upstream can build links to itself (Traefik's and
// Spring's convention). A client's own X-Forwarded-Prefix passes only from
// a trusted proxy (it is a forwarding header: see Edge).
func appendStripped(b []byte, x *core.Exchange) []byte {
	if !x.Route.Spec().StripPrefix || x.Route.Spec().PathPrefix == "/" {
		return b
	}
	b = append(b, "X-Forwarded-Prefix: "...)
	b = append(b, x.Route.Spec().PathPrefix...)
	return append(b, "\r\n"...)
}

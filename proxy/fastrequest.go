package proxy

// appendFastRequest appends the outbound head of a fast-lane request: the
// canonical path (less the prefix when the route strips it), the query byte
// for byte, the client's fields in its order and spelling less hop-by-hop
// ones, and X-Forwarded-* (replaced unless the peer is a trusted proxy; see
// Edge), followed by the body read so far.
func appendFastRequest(b []byte, x *exchange, h *reqHead, c *fastConn) []byte {
	b = append(b, h.method...)
	b = append(b, ' ')
	b = appendTarget(b, x)
	if h.hasQuery {
		b = append(b, '?')
		b = append(b, h.query...)
	}
	b = append(b, " HTTP/1.1\r\n"...)
	trusted := c.isTrusted()
	var xff, xfh, xfp bool
	for i := 0; i < h.nfields; i++ {
		f := &h.fields[i]
		switch f.kind {
		case fieldHopByHop:
			continue
		case fieldForwarded:
			if !trusted {
				continue
			}
			switch len(f.name) {
			case len("X-Forwarded-For"):
				xff = true
				continue // joined below
			case len("X-Forwarded-Host"):
				xfh = true
			case len("X-Forwarded-Proto"):
				xfp = true
			case len("X-Forwarded-Prefix"):
				if x.route.spec.StripPrefix {
					continue // replaced by this route's prefix below
				}
			}
		}
		b = appendHeaderLine(b, f.name, f.value)
	}
	b = append(b, "X-Forwarded-For: "...)
	if xff {
		for i := 0; i < h.nfields; i++ {
			if f := &h.fields[i]; f.kind == fieldForwarded && len(f.name) == len("X-Forwarded-For") {
				b = append(b, f.value...)
				b = append(b, ", "...)
			}
		}
	}
	b = append(b, c.clientIP...)
	b = append(b, "\r\n"...)
	if !xfh {
		b = appendHeaderLine(b, []byte("X-Forwarded-Host"), h.host)
	}
	if !xfp {
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	b = appendStripped(b, x)
	b = append(b, "\r\n"...)
	return append(b, x.bodyHead...)
}

// appendTarget appends the outbound path: the canonical path, less the
// route's prefix when it strips it. Both lanes use it.
func appendTarget(b []byte, x *exchange) []byte {
	path := x.path
	if x.route.spec.StripPrefix {
		path = stripPrefix(path, x.route.spec.PathPrefix)
	}
	return append(b, path...)
}

// appendStripped appends X-Forwarded-Prefix when the route strips its
// prefix, so that the upstream can build links to itself (Traefik's and
// Spring's convention). A client's own X-Forwarded-Prefix passes only from
// a trusted proxy (it is a forwarding header: see Edge).
func appendStripped(b []byte, x *exchange) []byte {
	if !x.route.spec.StripPrefix || x.route.spec.PathPrefix == "/" {
		return b
	}
	b = append(b, "X-Forwarded-Prefix: "...)
	b = append(b, x.route.spec.PathPrefix...)
	return append(b, "\r\n"...)
}

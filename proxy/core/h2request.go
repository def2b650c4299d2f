package core

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/wire"
)

// h2Template is an exchange's request as the HTTP/2 client sends it,
// converted once from the outbound HTTP/1.1 head the front-end wrote
// (x.Req): what both front-ends decided (the path less a stripped prefix,
// the query byte for byte, X-Forwarded-*, request filters' edits) holds for
// h2 upstreams as it does for HTTP/1.1 ones. Only HTTP/1.1's own framing
// and connection fields are left out (RFC 9113 §8.2.2).
type h2Template struct {
	method     string
	path       string // as written, without the query
	query      string
	forceQuery bool // a "?" with an empty query
	host       string
	header     http.Header
	trailer    []string // announced request trailer names
	length     int64    // -1: unknown (a chunked or h2 body)
	bodyHead   []byte   // body bytes that came with the head
}

var errBadOutbound = errors.New("the outbound request head cannot be converted to HTTP/2")

// parseH2Template converts req (ferry's own outbound head, then the body
// bytes read with it).
func parseH2Template(req []byte) (*h2Template, error) {
	end := bytes.Index(req, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, errBadOutbound
	}
	line, _, _ := bytes.Cut(req, []byte("\r\n"))
	method, rest, ok1 := strings.Cut(string(line), " ")
	target, _, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !strings.HasPrefix(target, "/") {
		return nil, errBadOutbound
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req[:end+4])))
	if err != nil {
		return nil, errBadOutbound
	}
	t := &h2Template{method: method, host: r.Host, header: r.Header, length: r.ContentLength,
		bodyHead: req[end+4:]}
	t.path, t.query, t.forceQuery = target, "", false
	if p, q, ok := strings.Cut(target, "?"); ok {
		t.path, t.query, t.forceQuery = p, q, q == ""
	}
	// net/http moves a chunked request's announced trailers to r.Trailer.
	t.trailer = slices.Sorted(maps.Keys(r.Trailer))
	for _, v := range t.header["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				t.trailer = append(t.trailer, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	if slices.ContainsFunc(t.header["Te"], func(v string) bool { return strings.Contains(strings.ToLower(v), "trailers") }) {
		t.header["Te"] = []string{"trailers"} // the only TE h2 carries: gRPC needs it
	} else {
		delete(t.header, "Te")
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Content-Length"} {
		delete(t.header, k)
	}
	if _, ok := t.header["User-Agent"]; !ok {
		t.header["User-Agent"] = nil // the client sent none: the transport adds none
	}
	return t, nil
}

// request is one attempt's request to the instance at addr, its body read
// from body.
func (t *h2Template) request(ctx context.Context, scheme, addr string, body *h2Body) *http.Request {
	r := &http.Request{
		Method:        t.method,
		URL:           h2URL(scheme, addr, t.path, t.query, t.forceQuery),
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Host:          t.host,
		Header:        t.header, // read only by the transport
		ContentLength: t.length,
	}
	if t.length != 0 {
		r.Body = body
	}
	if len(t.trailer) > 0 {
		r.Trailer = make(http.Header, len(t.trailer))
		for _, k := range t.trailer {
			r.Trailer[k] = nil
		}
		body.trailer = r.Trailer
	}
	return r.WithContext(ctx)
}

// appendResponseFields appends an h2 response's fields as HTTP/1.1 lines,
// sorted by name, leaving out the framing (written by the caller) and any
// connection field (none is valid in h2).
func appendResponseFields(b []byte, h http.Header) []byte {
	for _, k := range slices.Sorted(maps.Keys(h)) {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Trailer", "Connection", "Keep-Alive", "Proxy-Connection", "Upgrade":
			continue
		}
		for _, v := range h[k] {
			b = wire.AppendHeaderLine(b, []byte(k), []byte(v))
		}
	}
	return b
}

// trailerLines appends h's fields as "Name: value" lines (no CRLF), sorted,
// for Downstream.Trailer.
func trailerLines(h http.Header, yield func(line []byte) error) error {
	var line []byte
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			if !wire.ValidField(k, v) {
				continue
			}
			line = append(append(append(line[:0], k...), ": "...), v...)
			if err := yield(line); err != nil {
				return err
			}
		}
	}
	return nil
}

var _ io.ReadCloser = (*h2Body)(nil)

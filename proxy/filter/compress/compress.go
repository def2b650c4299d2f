// Package compress is the compress route filter (SPEC §13): it compresses
// response bodies with zstd, brotli or gzip, chosen from the client's
// Accept-Encoding and the route's preference order, streaming (never
// holding the whole body) and flushing when the upstream pauses.
//
// It only compresses: it never decompresses, so no input from a client or
// upstream is ever inflated.
package compress

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy/filter"
)

// Filter is one route's compress filter, a filter.BodyFilter. Safe for
// concurrent use; its encoders are pooled across responses.
type Filter struct {
	encodings []string // preference order
	minBytes  int64
	types     typeMatcher
	pools     map[string]*encoderPool
}

var _ filter.BodyFilter = (*Filter)(nil)

// New builds the filter of a route's compress block.
func New(cfg config.Compress) (*Filter, error) {
	if len(cfg.Encodings) == 0 || len(cfg.Encodings) > 3 {
		return nil, fmt.Errorf("compress: want 1 to 3 encodings, got %d", len(cfg.Encodings))
	}
	f := &Filter{encodings: cfg.Encodings, minBytes: cfg.MinBytes, types: newTypeMatcher(cfg.Types),
		pools: make(map[string]*encoderPool)}
	for _, e := range cfg.Encodings {
		p, err := newEncoderPool(e)
		if err != nil {
			return nil, err
		}
		f.pools[e] = p
	}
	return f, nil
}

// Body decides whether this response is compressed and returns the writer
// that does it, or nil. It changes the head through w: Vary for every
// response it could compress (even when this client gets identity, so that
// caches keep the variants apart), and Content-Encoding, a weak ETag and no
// Content-Length for a compressed one. A body of unknown length is decided
// by its writer once min_bytes arrived (filter rule 1: lazy head).
func (f *Filter) Body(r filter.Request, w filter.Response, dst io.Writer) filter.BodyWriter {
	if !f.eligible(r, w) {
		return nil
	}
	addVary(w)
	enc := choose(r.HeaderValues("Accept-Encoding"), f.encodings)
	if enc == "" {
		return nil
	}
	length := int64(-1)
	if cl := w.Header("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil // a malformed length: leave the body to the core's framing checks
		}
		length = n
	}
	if length >= 0 && (length < f.minBytes || length == 0) {
		return nil
	}
	bw := &writer{f: f, w: w, dst: dst, pool: f.pools[enc], encoding: enc}
	if length >= 0 {
		bw.start()
	}
	return bw
}

// eligible applies the rules that exclude a response whatever the client
// accepts.
func (f *Filter) eligible(r filter.Request, w filter.Response) bool {
	switch s := w.Status(); {
	case s < 200, s == http.StatusNoContent, s == http.StatusNotModified,
		s == http.StatusPartialContent:
		return false
	}
	if r.Method() == http.MethodHead || r.Header("Range") != "" {
		return false
	}
	if ce := w.Header("Content-Encoding"); ce != "" && !strings.EqualFold(strings.TrimSpace(ce), "identity") {
		return false // already encoded: never twice
	}
	if hasToken(w.HeaderValues("Cache-Control"), "no-transform") {
		return false
	}
	t := mediaType(w.Header("Content-Type"))
	if t == "text/event-stream" {
		return false // SSE: every event must reach the client as sent
	}
	return f.types.match(t)
}

// addVary adds Accept-Encoding to Vary unless it is there or Vary is "*".
func addVary(w filter.Response) {
	vs := w.HeaderValues("Vary")
	if hasToken(vs, "accept-encoding") || hasToken(vs, "*") {
		return
	}
	w.AddHeader("Vary", "Accept-Encoding")
}

// markEncoded sets the head of a compressed response.
func markEncoded(w filter.Response, enc string) {
	w.SetHeader("Content-Encoding", enc)
	w.DelHeader("Content-Length")
	if et := w.Header("ETag"); strings.HasPrefix(et, `"`) {
		// The compressed bytes differ from the identity ones, so a strong
		// validator would be wrong (RFC 9110 §8.8.1); weak still lets
		// If-None-Match revalidate either.
		w.SetHeader("ETag", "W/"+et)
	}
}

package proxy

import (
	"net/http"
	"strings"
	"time"

	"github.com/ferry-proxy/ferry/proxy/core"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// fastSource is the fast lane's core.RequestSource over the head being
// served. Strings are copied out: the connection's buffer is reused by the
// next request, and a filter may keep what it read (a cache key).
type fastSource struct{ c *fastConn }

func (s *fastSource) Method() string   { return s.c.head.Method }
func (s *fastSource) Host() string     { return string(s.c.head.Host) }
func (s *fastSource) RawQuery() string { return string(s.c.head.Query) }

func (s *fastSource) ClientIP() string {
	return s.c.s.h.EdgePolicy().ClientIP(s.c.remote, s.HeaderValues("X-Forwarded-For"))
}

func (s *fastSource) HeaderValues(name string) []string {
	if strings.EqualFold(name, requestIDField) {
		return []string{string(s.c.reqID)} // the ID ferry settled on
	}
	h := &s.c.head
	var out []string
	for i := 0; i < h.NFields; i++ {
		if f := &h.Fields[i]; strings.EqualFold(string(f.Name), name) {
			out = append(out, string(f.Value))
		}
	}
	return out
}

// appendFilterAnswer appends a request filter's answer (p.Answer) for the fast lane.
func (c *fastConn) appendFilterAnswer(b []byte, h *wire.RequestHead, p *core.Plan, extra []byte, closing bool, now time.Time) []byte {
	a := p.Answer
	return wire.AppendAnswer(b, a.Status, a.Header, a.Body, extra, closing, h.Method == http.MethodHead, now)
}

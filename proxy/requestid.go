package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/core"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// Request IDs (issue 16): every request carries X-Request-Id upstream, its
// response carries it back, and the access log has it. A trusted proxy's
// ID is kept; any other client's is replaced by a new one, so that an ID in
// the logs was set by ferry or by a proxy ferry trusts (Envoy does the same
// with preserve_external_request_id off). A new ID is 32 hex digits from
// the runtime's random source: unique, not secret.

const requestIDField = "X-Request-Id"

var requestIDName = []byte(requestIDField)

// maxRequestID bounds a kept ID; a longer one is replaced.
const maxRequestID = 200

// newRequestID writes a fresh ID into buf.
func newRequestID(buf *[32]byte) []byte {
	var raw [16]byte
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		raw[i], raw[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	hex.Encode(buf[:], raw[:])
	return buf[:]
}

// isRequestIDField reports whether name is X-Request-Id, in any case.
func isRequestIDField(name []byte) bool {
	return len(name) == len(requestIDField) && strings.EqualFold(string(name), requestIDField)
}

// setRequestID decides the fast lane's request ID for h: the trusted peer's
// own, else a new one (c.reqIDNew).
func (c *fastConn) setRequestID(h *wire.RequestHead) {
	c.reqID, c.reqIDNew = nil, true
	if c.isTrusted() {
		for i := 0; i < h.NFields; i++ {
			if f := &h.Fields[i]; isRequestIDField(f.Name) && len(f.Value) > 0 && len(f.Value) <= maxRequestID {
				c.reqID, c.reqIDNew = f.Value, false
				break
			}
		}
	}
	if c.reqID == nil {
		c.reqID = newRequestID(&c.reqIDBuf)
	}
}

// requestIDOf decides the net/http front-end's request ID and sets it on
// r, so that the outbound head and the filters see it.
func requestIDOf(r *http.Request, trusted bool) string {
	if id := r.Header.Get(requestIDField); trusted && id != "" && len(id) <= maxRequestID {
		return id
	}
	var buf [32]byte
	id := string(newRequestID(&buf))
	r.Header[requestIDField] = []string{id}
	return id
}

// respHasRequestID reports whether the upstream's response carries its own
// X-Request-Id (then it is relayed as it is).
func respHasRequestID(x *core.Exchange) bool {
	r := &x.Resp
	for i := 0; i < r.NFields; i++ {
		if isRequestIDField(r.Fields[i].Name) {
			return true
		}
	}
	return false
}

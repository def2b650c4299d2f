package proxy

import (
	"testing"

	"github.com/ferry-proxy/ferry/proxy/wire"
)

// TestVerdictAfterRefusal: once a head is refused, every later head on the
// connection is refused too.
func TestVerdictAfterRefusal(t *testing.T) {
	c := &guardConn{}
	c.track([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nX_Y: 1\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n"))
	for i, want := range []uint8{wire.RefuseNone, wire.RefuseUnderscore, wire.RefuseUnjudged, wire.RefuseUnjudged} {
		if got := c.verdict(); got != want {
			t.Errorf("head %d: got reason %d, want %d", i+1, got, want)
		}
	}
}

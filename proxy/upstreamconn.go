package proxy

import (
	"bytes"
	"net"
	"sync/atomic"
)

// upstreamConn fixes, on the way in, one gap between net/http and RFC 9110:
// when an upstream response's Connection header has "close", net/http's
// transport deletes the whole header before ReverseProxy sees it, so the
// other headers it nominates as hop-by-hop ("Connection: close, X-Secret")
// would reach the client. upstreamConn removes those header lines from the
// response head as it is read.
//
// It never buffers: a response head is only examined when it starts a read
// after a request was written and is complete within that read (as it is
// but for heads split across packets); anything else passes through as it
// is. After a 101 the connection is a tunnel and is left alone. Read and
// Write may run on different goroutines.
type upstreamConn struct {
	net.Conn
	expectHead atomic.Bool // a request was written: the next read may start a response
	tunnel     atomic.Bool
}

func newUpstreamConn(c net.Conn) net.Conn { return &upstreamConn{Conn: c} }

func (c *upstreamConn) Write(p []byte) (int, error) {
	if !c.tunnel.Load() {
		c.expectHead.Store(true)
	}
	return c.Conn.Write(p)
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.expectHead.Load() && !c.tunnel.Load() {
		c.expectHead.Store(false)
		n = c.filterHeads(p, n)
	}
	return n, err
}

var (
	httpPrefix = []byte("HTTP/1.")
	crlf2      = []byte("\r\n\r\n")
)

// filterHeads rewrites the complete response heads at the start of p[:n]
// (1xx heads, then the final one) and returns the new length.
func (c *upstreamConn) filterHeads(p []byte, n int) int {
	start := 0
	for bytes.HasPrefix(p[start:n], httpPrefix) {
		end := bytes.Index(p[start:n], crlf2)
		if end < 0 {
			return n
		}
		end += start + len(crlf2)
		head := p[start:end]
		status := statusOf(head)
		newLen := dropNominated(head)
		if newLen < len(head) {
			copy(p[start+newLen:], p[end:n])
			n -= len(head) - newLen
			end = start + newLen
		}
		if status == 101 {
			c.tunnel.Store(true)
			return n
		}
		if status >= 200 || status < 100 {
			return n
		}
		start = end // a 1xx: the final head may follow
	}
	return n
}

// statusOf reads the status code of "HTTP/1.x NNN ...".
func statusOf(head []byte) int {
	if len(head) < 12 {
		return 0
	}
	code := 0
	for _, c := range head[9:12] {
		if c < '0' || c > '9' {
			return 0
		}
		code = code*10 + int(c-'0')
	}
	return code
}

// dropNominated removes, in place, the header lines that a Connection
// header with "close" nominates, and returns the head's new length. A head
// without such a header is left untouched (ReverseProxy handles the usual
// case).
func dropNominated(head []byte) int {
	var names [8][]byte
	count, closing := 0, false
	for rest := head; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("Connection")) {
			continue
		}
		for len(value) > 0 {
			tok := value
			if i := bytes.IndexByte(value, ','); i >= 0 {
				tok, value = value[:i], value[i+1:]
			} else {
				value = nil
			}
			tok = bytes.TrimSpace(tok)
			switch {
			case bytes.EqualFold(tok, []byte("close")):
				closing = true
			case len(tok) > 0 && count < len(names):
				names[count] = tok
				count++
			}
		}
	}
	if !closing || count == 0 {
		return len(head)
	}
	out := head[:0:len(head)]
	rest := head
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		name, _, ok := bytes.Cut(line, []byte(":"))
		drop := false
		if ok {
			name = bytes.TrimSpace(name)
			for _, n := range names[:count] {
				if bytes.EqualFold(name, n) {
					drop = true
				}
			}
		}
		if !drop {
			out = append(out, line...) // never longer than what was read: in place
		}
	}
	return len(out)
}

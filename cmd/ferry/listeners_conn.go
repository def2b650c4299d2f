package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy"
)

// The pieces of a listener block's connection path (listeners_tls.go runs
// them): a listener fed by a channel, so that one socket's connections can
// be sorted between the HTTP/1.1 fast lane and the HTTP/2 server; the
// sorting itself (the TLS handshake's ALPN, or the h2c preface); the h2
// server; and the plain listener's redirect to HTTPS.

// chanListener is a net.Listener whose Accept returns the connections given
// to it: the fast lane and the h2 server each serve one, fed by a
// listener's sorting goroutines. Safe for concurrent use.
type chanListener struct {
	addr      net.Addr
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// give hands c to the server accepting from l, or closes c once l is closed.
func (l *chanListener) give(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

// h2Preface is how every HTTP/2 connection with prior knowledge starts
// (RFC 9113 §3.4); its first 14 bytes can never start an HTTP/1.1 request
// ferry serves ("PRI" is no method it routes).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// peekPreface reads from c until its first bytes either match the h2
// preface or cannot, within deadline. It returns whether they matched and
// the bytes read, which the caller replays (peekedConn).
func peekPreface(c net.Conn, deadline time.Time) (bool, []byte, error) {
	_ = c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, len(h2Preface))
	for len(buf) < len(h2Preface) {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if !strings.HasPrefix(h2Preface, string(buf)) {
			return false, buf, nil // an HTTP/1.x request (most answer on the first read)
		}
		if err != nil {
			return false, buf, err
		}
	}
	return true, buf, nil
}

// peekedConn replays the bytes peekPreface read before reading on.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func newPeekedConn(c net.Conn, peeked []byte) net.Conn {
	if len(peeked) == 0 {
		return c
	}
	return &peekedConn{Conn: c, r: bufio.NewReaderSize(&prefixReader{prefix: peeked, c: c}, 16)}
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// prefixReader reads prefix, then c. Reads after the prefix go straight to
// c (bufio passes large reads through).
type prefixReader struct {
	prefix []byte
	c      net.Conn
}

func (r *prefixReader) Read(b []byte) (int, error) {
	if len(r.prefix) > 0 {
		n := copy(b, r.prefix)
		r.prefix = r.prefix[n:]
		return n, nil
	}
	return r.c.Read(b)
}

// handshake runs c's TLS handshake within deadline (or until ctx ends).
func handshake(ctx context.Context, c *tls.Conn, deadline time.Time) error {
	_ = c.SetDeadline(deadline)
	err := c.HandshakeContext(ctx)
	_ = c.SetDeadline(time.Time{})
	return err
}

// newH2Server builds the HTTP/2 server of a listener: h2 by ALPN on TLS,
// h2c with prior knowledge on plain listeners, both running the proxy's
// Handler (the same core as the fast lane). Its limits (README "TLS and
// HTTP/2"): Envoy's edge guidance for streams and windows; the header
// list limited as HTTP/1.1 heads are (limits.max_header_bytes, sent as
// SETTINGS_MAX_HEADER_LIST_SIZE); HPACK tables at the RFC's 4 KiB default;
// 16 KiB frames. Go's own protections stay on: a client that resets
// streams faster than handlers finish is throttled and then disconnected
// (CVE-2023-44487, "rapid reset"), and so is one flooding PING, SETTINGS or
// empty frames.
func newH2Server(h http.Handler, l config.Limits, logger hclog.Logger) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP2(true)            // TLS connections whose ALPN chose "h2"
	protocols.SetUnencryptedHTTP2(true) // h2c prior knowledge, sorted by its preface
	return &http.Server{
		Handler:                      h,
		ReadHeaderTimeout:            l.ReadHeaderTimeout,
		IdleTimeout:                  l.IdleTimeout,
		MaxHeaderBytes:               l.MaxHeaderBytes,
		DisableGeneralOptionsHandler: true,
		Protocols:                    &protocols,
		HTTP2:                        h2Served(l),
		ErrorLog:                     logger.Named("http2").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// newRedirectServer builds the server of a plain listener with
// redirect_https: every request is answered 308 (method and body kept by
// the client, RFC 9110 §15.4.9) to target with {host} replaced by the
// request's host without its port, and the request's path and query
// appended. Nothing reaches an upstream.
func newRedirectServer(target string, http2 bool, l config.Limits, logger hclog.Logger) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(http2)
	return &http.Server{
		Handler:                      redirectHandler(target),
		ReadHeaderTimeout:            l.ReadHeaderTimeout,
		IdleTimeout:                  l.IdleTimeout,
		MaxHeaderBytes:               l.MaxHeaderBytes,
		DisableGeneralOptionsHandler: true,
		Protocols:                    &protocols,
		ErrorLog:                     logger.Named("redirect").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// redirectHandler answers every request with a 308 to target (see
// newRedirectServer); a request without a usable host gets a 400, since
// there is nowhere to send it.
func redirectHandler(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := redirectHost(r.Host)
		if host == "" && strings.Contains(target, "{host}") {
			http.Error(w, "ferry: a redirect to HTTPS needs a Host header", http.StatusBadRequest)
			return
		}
		var b bytes.Buffer
		b.WriteString(strings.ReplaceAll(target, "{host}", host))
		path := r.URL.EscapedPath()
		if r.RequestURI == "*" || path == "" {
			path = "/"
		}
		b.WriteString(path)
		if r.URL.RawQuery != "" || r.URL.ForceQuery {
			b.WriteByte('?')
			b.WriteString(r.URL.RawQuery)
		}
		w.Header().Set("Location", b.String())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusPermanentRedirect)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte("ferry: use HTTPS\n"))
		}
	})
}

// redirectHost is the request's host without its port, lower-case; an IPv6
// address keeps its brackets. "" when there is none or it is not a plain
// host (net/http already refuses control characters and spaces in Host).
func redirectHost(hostport string) string {
	h := strings.ToLower(hostport)
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return ""
		}
		return h[:end+1]
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	if strings.ContainsAny(h, "/?#@\\") {
		return ""
	}
	return h
}

// fastLane builds a listener's HTTP/1.1 server: the same fast lane, with
// the same net/http hand-off, as the listen shorthand's (newDataServer).
// Its guard caps the connections at max_connections when counts, else the
// listener's accept loop does (connSlots).
func fastLane(h *proxy.Handler, cfg *config.Config, logger hclog.Logger, counts bool) *proxy.Server {
	return newServerCounting(h, cfg, logger, counts)
}

package upstream

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/ferry-proxy/ferry/proxy/sock"
)

// TLS to the instances of an HTTP/1.1 service (SPEC §12, service tls
// block): a TLS pool dials TCP, completes the handshake within the same
// connect_timeout, and keeps its connections idle like a cleartext pool.
//
// The quiet check under TLS. A pooled connection is reused only if nothing
// arrived while it was idle, and a request body stops streaming when the
// upstream answers early. Under TLS, bytes that arrived may sit in three
// places: the socket, tls.Conn's buffer of raw records (it reads as much as
// the socket holds, not one record) and its buffer of decrypted bytes. And
// not every record is an answer: TLS 1.3 servers send post-handshake
// messages — NewSessionTicket, which Go and OpenSSL servers send after the
// client's Finished when the client can resume (ferry's configurations
// cache sessions), so it arrives after the handshake returned, while the
// connection idles or while the first body streams; KeyUpdate at any time.
// On the wire every TLS 1.3 record looks like application data, so a peek
// at the socket alone would close every fresh connection after its first
// response and, worse, take a ticket for an early answer and stop sending
// the body (then wait for an answer that never comes: a 504).
//
// So the check lets tls.Conn process every record that has arrived: a Read
// through tls.Conn whose reads of the socket (recordConn, in drain mode)
// take what is there without blocking and then say "would block", an error
// tls.Conn treats as temporary. Post-handshake messages are consumed, as
// they must be; decrypted data (kept for the exchange's next Read), a
// close_notify or a TLS error make the connection not quiet. recordConn
// also follows the record framing, so a record that only began to arrive
// is caught too: it makes a pooled connection not quiet, and is no early
// answer yet for a body being sent (the next check sees it whole).

// tlsState is a TLS connection's part of Conn.
type tlsState struct {
	conn *tls.Conn
	rec  *recordConn
	one  [1]byte
	held bool // one holds a byte a peek read: the next Read returns it first
}

// NewTLSPool returns the pool of an instance reached over TLS with cfg
// (never modified; a clone names addr's host as the server when cfg names
// none, and offers http/1.1 by ALPN).
func NewTLSPool(addr string, cfg *tls.Config) *Pool {
	return &Pool{addr: addr, tls: ClientConfig(cfg, addr, "http/1.1")}
}

// ClientConfig is cfg for one instance at addr: ServerName defaults to
// addr's host (the instance address, as ca-signed certificates for IPs
// carry it), and ALPN offers proto.
func ClientConfig(cfg *tls.Config, addr, proto string) *tls.Config {
	c := cfg.Clone()
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			c.ServerName = host
		} else {
			c.ServerName = addr
		}
	}
	c.NextProtos = []string{proto}
	return c
}

// TLS returns the TLS configuration the pool dials with; nil: cleartext.
func (p *Pool) TLS() *tls.Config { return p.tls }

func (p *Pool) dialTLS(ctx context.Context, timeout time.Duration) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dialTLS(ctx, p.addr, p.tls)
	if err != nil {
		return nil, &DialError{Addr: p.addr, Err: err}
	}
	uc := &Conn{Conn: c.conn, Pool: p, tls: c}
	uc.Bind(c.rec.Conn) // the peek looks at the TCP socket
	return uc, nil
}

// dialTLS connects to addr and completes the handshake before ctx ends.
func dialTLS(ctx context.Context, addr string, cfg *tls.Config) (*tlsState, error) {
	d := net.Dialer{KeepAlive: tcpKeepAlive}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rec := &recordConn{Conn: raw}
	tc := tls.Client(rec, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return &tlsState{conn: tc, rec: rec}, nil
}

// Peek reports the connection's state without consuming anything the
// exchange will read: under TLS, see the top of this file.
func (c *Conn) Peek() sock.PeekState {
	if c.tls == nil {
		return c.Peeker.Peek()
	}
	if st := c.tlsDrain(); st != sock.PeekQuiet {
		return st
	}
	if c.tls.rec.midRecord() {
		return sock.PeekData // a record began arriving unasked
	}
	return c.Peeker.Peek()
}

// Answered reports, while a request body streams (client.go), whether the
// upstream answered early or closed. Under TLS only decrypted data or the
// connection's end count: a post-handshake message is not an answer, nor
// is a record still arriving (the next check sees it whole).
func (c *Conn) Answered() bool {
	if c.tls == nil {
		return c.Peeker.Peek() != sock.PeekQuiet
	}
	return c.tlsDrain() != sock.PeekQuiet
}

// tlsDrain lets tls.Conn process every record that has arrived — what it
// holds and what the socket holds, read without blocking — and reports
// PeekData when that gave application data (kept for the next Read),
// PeekClosed at a close_notify or any TLS error, else PeekQuiet.
func (c *Conn) tlsDrain() sock.PeekState {
	t := c.tls
	if t.held {
		return sock.PeekData
	}
	t.rec.drain, t.rec.fd = true, c.Peeker.Fd
	n, err := t.conn.Read(t.one[:])
	t.rec.drain = false
	switch {
	case n > 0:
		t.held = true
		return sock.PeekData
	case err == errWouldBlock:
		return sock.PeekQuiet // everything that arrived was processed
	}
	return sock.PeekClosed // close_notify (io.EOF), an alert, a broken record
}

// errWouldBlock ends a drain: the socket has nothing more. It is a
// temporary net.Error, which tls.Conn returns without breaking the
// connection.
var errWouldBlock error = &wouldBlockError{}

type wouldBlockError struct{}

func (*wouldBlockError) Error() string   { return "no more bytes without blocking" }
func (*wouldBlockError) Timeout() bool   { return true }
func (*wouldBlockError) Temporary() bool { return true }

// Read reads response bytes: first a byte a peek took, then the
// connection's.
func (c *Conn) Read(p []byte) (int, error) {
	if t := c.tls; t != nil && t.held && len(p) > 0 {
		t.held = false
		p[0] = t.one[0]
		return 1, nil
	}
	return c.Conn.Read(p)
}

// recordConn is the TCP connection under a tls.Conn. It follows the TLS
// record framing of what it reads (a 5-byte header whose last two bytes
// are the length, RFC 8446 §5.1) so that midRecord can tell whether the raw
// stream stopped inside a record. Only the connection's owner reads it.
type recordConn struct {
	net.Conn
	hdr  [5]byte
	hn   int // header bytes seen of the current record
	body int // body bytes of the current record still to come
	// drain: reads take what the socket holds without blocking (one
	// recv with MSG_DONTWAIT on fd, beside Go's poller, which no other
	// read uses meanwhile) and end with errWouldBlock.
	drain bool
	fd    int
}

func (r *recordConn) Read(p []byte) (int, error) {
	if r.drain {
		return r.readNow(p)
	}
	n, err := r.Conn.Read(p)
	r.follow(p[:n])
	return n, err
}

func (r *recordConn) readNow(p []byte) (int, error) {
	if r.fd < 0 || len(p) == 0 {
		return 0, errWouldBlock
	}
	n, err := sock.RecvNoWait(r.fd, p, 0)
	switch {
	case err == syscall.EAGAIN:
		return 0, errWouldBlock
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	r.follow(p[:n])
	return n, nil
}

func (r *recordConn) follow(b []byte) {
	for len(b) > 0 {
		if r.body > 0 {
			k := min(r.body, len(b))
			r.body -= k
			b = b[k:]
			continue
		}
		k := copy(r.hdr[r.hn:], b)
		r.hn += k
		b = b[k:]
		if r.hn == len(r.hdr) {
			r.body = int(r.hdr[3])<<8 | int(r.hdr[4])
			r.hn = 0
		}
	}
}

// midRecord reports whether the stream read so far ends inside a record.
func (r *recordConn) midRecord() bool { return r.hn > 0 || r.body > 0 }

package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/ferry-proxy/ferry/proxy/sock"
)

// TLS to the instances of an HTTP/1.1 service (SPEC §12, service tls
// block): a TLS pool dials TCP, completes the handshake within the same
// connect_timeout, and keeps its connections idle like a cleartext pool.
//
// The quiet check under TLS. A pooled connection is reused only if nothing
// arrived while it was idle. Under TLS, bytes that arrived may sit in three
// places: the socket (seen by the peek on the raw descriptor, as for
// cleartext), tls.Conn's buffer of raw records it pulled off the socket
// (it reads as much as the socket holds, not one record), and its buffer of
// decrypted bytes not yet read. The peek alone misses the last two, and it
// cannot tell an unsolicited response from a TLS 1.3 post-handshake message
// (every TLS 1.3 record looks like application data on the wire). So the
// check first lets tls.Conn process what it holds with a read whose
// deadline has passed (no system call: Go fails such a read before touching
// the socket): post-handshake messages — a NewSessionTicket, which many
// servers send only after the client's Finished, so it arrives after the
// handshake returned, or a KeyUpdate — are consumed, as they must be, and
// the connection stays usable; application data or a close_notify makes it
// not quiet. A record tls.Conn holds only part of is caught by recordConn,
// which follows the record framing of the raw stream: if the stream stops
// mid-record, bytes came unasked. Then the raw peek looks at the socket.
// Without the first step a connection would be wrongly closed after a late
// ticket (a reconnect, not a bug) and, worse, the early-answer check while
// a request body streams (client.go) would take a ticket for the upstream's
// answer.

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
	t := c.tls
	if t.held {
		return sock.PeekData
	}
	sock.SetRead(t.conn, &c.ReadDeadline, expired)
	n, err := t.conn.Read(t.one[:])
	switch {
	case n > 0:
		t.held = true
		return sock.PeekData
	case errors.Is(err, os.ErrDeadlineExceeded):
		// What tls.Conn held is processed: nothing for the exchange.
	case err == io.EOF:
		return sock.PeekClosed // close_notify
	default:
		return sock.PeekClosed // a broken record, an alert
	}
	if t.rec.midRecord() {
		return sock.PeekData
	}
	return c.Peeker.Peek()
}

// expired is a read deadline long past.
var expired = time.Unix(1, 0)

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
}

func (r *recordConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.follow(p[:n])
	return n, err
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

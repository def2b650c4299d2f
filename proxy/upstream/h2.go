package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// H2 is the HTTP/2 client to the instances of one service whose protocol
// is http2 or grpc: one http.Transport speaking h2 over TLS (ALPN "h2"), or
// h2c with prior knowledge when the service has no tls block. It outlives
// tables like the HTTP/1.1 pools: the Builder keeps it while the service is
// routed with the same TLS configuration and connect_timeout, and closes it
// after.
//
// The picked instance is the request's URL host (its address): the
// transport keys its connections by it, so that each instance gets its own
// connections (multiplexed streams, one connection per instance in the
// usual case) and the dial goes to exactly the instance the balancer chose,
// with no instance smuggled through the request's context. The request's
// Host (the :authority) stays the client's.
//
// It is safe for concurrent use.
type H2 struct {
	t              *http.Transport
	tls            *tls.Config // the spec's (nil: h2c), to compare on rebuild
	connectTimeout time.Duration
	retired        atomic.Bool

	mu     sync.Mutex
	byAddr map[string]*tls.Config // per instance: ServerName and ALPN set
}

// NewH2 returns an HTTP/2 client dialing within connectTimeout (the TLS
// handshake included) over cfg, or h2c when cfg is nil.
func NewH2(cfg *tls.Config, connectTimeout time.Duration) *H2 {
	h := &H2{tls: cfg, connectTimeout: connectTimeout, byAddr: make(map[string]*tls.Config)}
	var protocols http.Protocols
	t := &http.Transport{
		// Dial failures come back as *DialError: nothing of the request
		// was sent, and the attempt policy may try another instance.
		DialContext: h.dial,
		// No proxy from the environment, no transparent gzip: ferry
		// relays what the upstream sends.
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		IdleConnTimeout:        idleConnTimeout,
		Protocols:              &protocols,
		HTTP2: &http.HTTP2Config{
			// A connection that stops answering is found by pings
			// rather than by a stream waiting forever.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	if cfg == nil {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP2(true)
		t.DialTLSContext = h.dialTLS
	}
	h.t = t
	return h
}

// Scheme is the URL scheme of requests to the instances.
func (h *H2) Scheme() string {
	if h.tls == nil {
		return "http"
	}
	return "https"
}

// Same reports whether h was built for cfg and connectTimeout.
func (h *H2) Same(cfg *tls.Config, connectTimeout time.Duration) bool {
	return h.tls == cfg && h.connectTimeout == connectTimeout
}

// RoundTrip sends req (its URL host an instance's address) and returns the
// response once its head arrived.
func (h *H2) RoundTrip(req *http.Request) (*http.Response, error) { return h.t.RoundTrip(req) }

// CloseIdle closes the connections no stream uses. Requests may still be
// sent: they dial anew.
func (h *H2) CloseIdle() { h.t.CloseIdleConnections() }

// Retire closes the idle connections now and, from now on, each one whose
// last stream ends (see Done): the Builder no longer hands h out.
func (h *H2) Retire() {
	h.retired.Store(true)
	h.t.CloseIdleConnections()
}

// Done is called when an exchange through h ended: on a retired client it
// closes the connections that became idle.
func (h *H2) Done() {
	if h.retired.Load() {
		h.t.CloseIdleConnections()
	}
}

func (h *H2) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: h.connectTimeout, KeepAlive: tcpKeepAlive}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	return c, nil
}

// errNoH2 is an instance that did not agree to speak h2 by ALPN.
var errNoH2 = errors.New("the upstream did not negotiate h2 by ALPN")

func (h *H2) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	h.mu.Lock()
	cfg := h.byAddr[addr]
	if cfg == nil {
		cfg = ClientConfig(h.tls, addr, "h2")
		h.byAddr[addr] = cfg
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, h.connectTimeout)
	defer cancel()
	s, err := dialTLS(ctx, addr, cfg)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	if s.conn.ConnectionState().NegotiatedProtocol != "h2" {
		s.conn.Close()
		return nil, &DialError{Addr: addr, Err: errNoH2}
	}
	return s.conn, nil
}

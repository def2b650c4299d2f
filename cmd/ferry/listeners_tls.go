package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/proxy"
	"github.com/ferry-proxy/ferry/proxy/certs"
)

// Listener blocks (SPEC §12). Each block has its own socket and its own
// servers: the HTTP/1.1 fast lane (with its net/http hand-off), the HTTP/2
// server when http2 = true, or the redirect server. One accept loop per
// socket sorts connections between them:
//
//   - TLS: the handshake runs on a goroutine of its own, bounded by
//     read_header_timeout, off the accept loop; ALPN "h2" goes to the h2
//     server, anything else (HTTP/1.1) to the fast lane, which gets the
//     handshaken *tls.Conn through a channel-fed listener;
//   - plain with http2: the first bytes are peeked; the h2 preface goes to
//     the h2 server (h2c with prior knowledge), the rest to the fast lane;
//   - plain: straight to the fast lane; redirect_https: to the redirect server.
//
// Reload applies listener changes (nginx and HAProxy users expect it): a
// block added is bound, one removed stops accepting and drains within
// shutdown_timeout, one changed gets new servers — on the same socket when
// its address stayed, so no connection is refused meanwhile — while its old
// servers drain. An unchanged block keeps its servers and re-reads its
// certificates (what SIGHUP promises). Everything that can fail (binding,
// loading certificates) happens before anything is switched, so a reload
// that cannot be applied changes nothing and says why.

// maxSorting bounds, per listener, the connections being handshaken or
// peeked at: beyond it the accept loop waits, and new connections wait in
// the kernel's backlog, as HAProxy's maxconn does.
const maxSorting = 1024

// listenerSet runs the listener blocks of the running configuration. Safe
// for concurrent use; reloads and shutdown are serialized by the app.
type listenerSet struct {
	handler *proxy.Handler
	logger  hclog.Logger
	errs    chan error // the first unexpected accept or serve error; capacity 1

	mu       sync.Mutex
	live     map[string]*blockRuntime // by listener name; guarded by mu
	draining sync.WaitGroup
}

func newListenerSet(h *proxy.Handler, logger hclog.Logger) *listenerSet {
	return &listenerSet{handler: h, logger: logger.Named("listener"), errs: make(chan error, 1), live: make(map[string]*blockRuntime)}
}

// Errs receives the first error a listener stopped with other than on shutdown.
func (s *listenerSet) Errs() <-chan error { return s.errs }

func (s *listenerSet) fail(err error) {
	select {
	case s.errs <- err:
	default:
	}
}

// blockRuntime is one listener block being served: its socket, certificate
// store and servers. It is built by prepare, started by commit.
type blockRuntime struct {
	l        config.Listener
	limits   config.Limits
	fastLane bool

	sock  net.Listener
	store *certs.Store // nil on a plain listener
	// slots count and cap the connections the accept loop sorts (see
	// connSlots); nil when the fast lane's guard does (a plain block).
	slots *connSlots

	fast           *proxy.Server // nil on a redirect listener
	fastLn         *chanListener
	h2             *http.Server // nil without http2
	h2Ln           *chanListener
	redirect       *http.Server // set on a redirect listener only
	redirectLn     *chanListener
	handshakeLimit time.Duration

	ctx        context.Context // handshakes and the certificate poll
	cancel     context.CancelFunc
	stopAccept chan struct{}
	acceptDone chan struct{}
	sorting    sync.WaitGroup // handshakes and peeks in flight
	serving    sync.WaitGroup // the servers' Serve and the certificate poll
}

// same reports whether rt serves l with limits and fastLane as they are:
// then a reload keeps it.
func (rt *blockRuntime) same(l *config.Listener, limits config.Limits, fastLane bool) bool {
	if rt.l.Address != l.Address || rt.l.HTTP2 != l.HTTP2 || rt.l.RedirectHTTPS != l.RedirectHTTPS ||
		rt.limits != limits || rt.fastLane != fastLane || (rt.l.TLS == nil) != (l.TLS == nil) {
		return false
	}
	if l.TLS == nil {
		return true
	}
	a, b := rt.l.TLS, l.TLS
	if a.MinVersion != b.MinVersion || a.ClientCAFile != b.ClientCAFile || len(a.Certificates) != len(b.Certificates) {
		return false
	}
	for i := range a.Certificates {
		if a.Certificates[i] != b.Certificates[i] {
			return false
		}
	}
	return true
}

// listenerPlan is a prepared switch to a configuration's listener blocks.
type listenerPlan struct {
	s      *listenerSet
	next   map[string]*blockRuntime // by name: kept or new
	kept   map[*blockRuntime]bool
	reused map[net.Listener]bool // sockets that pass from an old runtime to a new one
	fresh  []net.Listener        // sockets bound for this plan
}

// prepare binds new addresses and loads certificates for cfg's listener
// blocks without serving anything. On error nothing is left open.
func (s *listenerSet) prepare(cfg *config.Config) (*listenerPlan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &listenerPlan{s: s, next: make(map[string]*blockRuntime), kept: make(map[*blockRuntime]bool), reused: make(map[net.Listener]bool)}
	for _, l := range cfg.Listeners {
		if cur := s.live[l.Name]; cur != nil && cur.same(l, cfg.Limits, cfg.FastLane) {
			p.next[l.Name], p.kept[cur] = cur, true
			continue
		}
		rt, err := s.build(l, cfg)
		if err == nil {
			rt.sock, err = p.socket(l.Address)
		}
		if err != nil {
			p.abort()
			return nil, fmt.Errorf("listener %q: %w", l.Name, err)
		}
		p.next[l.Name] = rt
	}
	return p, nil
}

// socket returns the running socket of the same address (handed over at
// commit), or binds one.
func (p *listenerPlan) socket(addr string) (net.Listener, error) {
	if !portZero(addr) {
		for _, cur := range p.s.live {
			if cur.l.Address == addr && !p.kept[cur] && !p.reused[cur.sock] {
				p.reused[cur.sock] = true
				return cur.sock, nil
			}
		}
	}
	ln, err := listenData(addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	p.fresh = append(p.fresh, ln)
	return ln, nil
}

// isFDExhaustion reports an accept error that passes when connections close.
func isFDExhaustion(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

func portZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// abort closes what prepare bound.
func (p *listenerPlan) abort() {
	for _, ln := range p.fresh {
		ln.Close()
	}
	for _, rt := range p.next {
		if !p.kept[rt] && rt.cancel != nil {
			rt.cancel()
		}
	}
}

// commit switches to the plan: new runtimes serve at once, replaced and
// removed ones stop accepting and drain in the background within timeout,
// kept ones re-read their certificates.
func (p *listenerPlan) commit(timeout time.Duration) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, cur := range s.live {
		if p.kept[cur] {
			continue
		}
		handedOver := p.reused[cur.sock]
		cur.stopAccepting(!handedOver)
		s.draining.Add(1)
		go func() {
			defer s.draining.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := cur.shutdown(ctx); err != nil {
				s.logger.Warn("in-flight requests did not finish within shutdown_timeout; closing them", "listener", name, "error", err)
			}
		}()
	}
	for name, rt := range p.next {
		if p.kept[rt] {
			if rt.store != nil {
				_ = rt.store.Reload() // logged by the store
			}
			continue
		}
		rt.start(s)
		s.logger.Info("serving", "listener", name, "address", rt.sock.Addr().String(), "tls", rt.store != nil,
			"http2", rt.l.HTTP2, "redirect_https", rt.l.RedirectHTTPS)
	}
	s.live = p.next
}

// Addrs returns the address each listener block serves, by name.
func (s *listenerSet) Addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.live))
	for name, rt := range s.live {
		out[name] = rt.sock.Addr().String()
	}
	return out
}

// Stores returns the certificate store of each TLS listener, by name (for
// metrics and the admin API).
func (s *listenerSet) Stores() map[string]*certs.Store {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*certs.Store)
	for name, rt := range s.live {
		if rt.store != nil {
			out[name] = rt.store
		}
	}
	return out
}

// servedBlock is one listener block being served, for the admin API.
type servedBlock struct {
	L     config.Listener
	Addr  string
	Store *certs.Store // nil on a plain listener
}

// Served returns the listener blocks being served, by name.
func (s *listenerSet) Served() map[string]servedBlock {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]servedBlock, len(s.live))
	for name, rt := range s.live {
		out[name] = servedBlock{L: rt.l, Addr: rt.sock.Addr().String(), Store: rt.store}
	}
	return out
}

// OpenConnections is each live block's open client connections, by name
// (see connSlots; a plain block's are its fast lane's).
func (s *listenerSet) OpenConnections() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.live))
	for name, rt := range s.live {
		switch {
		case rt.slots != nil:
			out[name] = rt.slots.Open()
		case rt.fast != nil:
			out[name] = rt.fast.OpenConnections()
		}
	}
	return out
}

// shutdown stops every listener gracefully within ctx and waits for all of
// them, draining ones included. It returns ctx's error when ctx ended first.
func (s *listenerSet) shutdown(ctx context.Context) error {
	s.mu.Lock()
	live := s.live
	s.live = map[string]*blockRuntime{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(live))
	for _, rt := range live {
		rt.stopAccepting(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- rt.shutdown(ctx)
		}()
	}
	wg.Wait()
	s.draining.Wait()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

// build makes the certificate store and servers of l; no socket yet. The
// caller holds s.mu.
func (s *listenerSet) build(l *config.Listener, cfg *config.Config) (*blockRuntime, error) {
	log := s.logger.With("listener", l.Name)
	rt := &blockRuntime{l: *l, limits: cfg.Limits, fastLane: cfg.FastLane, handshakeLimit: cfg.Limits.ReadHeaderTimeout,
		stopAccept: make(chan struct{}), acceptDone: make(chan struct{})}
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	if l.TLS != nil {
		pairs := make([]certs.Pair, len(l.TLS.Certificates))
		for i, c := range l.TLS.Certificates {
			pairs[i] = certs.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile}
		}
		var replaces *certs.Store // its expiry warnings of the day are not repeated
		if cur := s.live[l.Name]; cur != nil {
			replaces = cur.store
		}
		store, err := certs.New(certs.Options{Certificates: pairs, MinVersion: l.TLS.MinVersion,
			ClientCAFile: l.TLS.ClientCAFile, HTTP2: l.HTTP2, Logger: log.Named("certs"), Replaces: replaces})
		if err != nil {
			rt.cancel()
			return nil, err
		}
		rt.store = store
	}
	if l.RedirectHTTPS != "" {
		rt.redirect = newRedirectServer(l.RedirectHTTPS, l.HTTP2, cfg.Limits, log)
		rt.slots = newConnSlots(cfg.Limits.MaxConnections)
		return rt, nil
	}
	if l.TLS != nil || l.HTTP2 {
		// The accept loop sorts every connection and counts it; the fast
		// lane's guard then does not count again.
		rt.slots = newConnSlots(cfg.Limits.MaxConnections)
		rt.fast = fastLane(s.handler, cfg, log, false)
	} else {
		rt.fast = fastLane(s.handler, cfg, log, true)
	}
	if l.HTTP2 {
		rt.h2 = newH2Server(s.handler, cfg.Limits, log)
	}
	return rt, nil
}

// start serves rt's socket.
func (rt *blockRuntime) start(s *listenerSet) {
	addr := rt.sock.Addr()
	serve := func(srv server, ln net.Listener) {
		rt.serving.Add(1)
		go func() {
			defer rt.serving.Done()
			if err := serve(srv, ln); err != nil {
				s.fail(fmt.Errorf("listener %q: %w", rt.l.Name, err))
			}
		}()
	}
	if rt.redirect != nil {
		rt.redirectLn = newChanListener(addr)
		serve(rt.redirect, rt.redirectLn)
	} else {
		rt.fastLn = newChanListener(addr)
		serve(rt.fast, rt.fastLn)
	}
	if rt.h2 != nil {
		rt.h2Ln = newChanListener(addr)
		serve(rt.h2, rt.h2Ln)
	}
	if rt.store != nil {
		rt.serving.Add(1)
		go func() {
			defer rt.serving.Done()
			rt.store.Run(rt.ctx)
		}()
	}
	go rt.accept(s)
}

// accept is the socket's accept loop; it ends when stopAccepting is called
// or the socket fails.
func (rt *blockRuntime) accept(s *listenerSet) {
	defer close(rt.acceptDone)
	sem := make(chan struct{}, maxSorting)
	var backoff time.Duration
	for {
		if rt.slots != nil && !rt.slots.take(rt.stopAccept) {
			return
		}
		c, err := rt.sock.Accept()
		if err != nil {
			if rt.slots != nil {
				rt.slots.give()
			}
			select {
			case <-rt.stopAccept:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isFDExhaustion(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-rt.stopAccept:
					return
				}
				continue
			}
			s.fail(fmt.Errorf("listener %q: accept: %w", rt.l.Name, err))
			return
		}
		backoff = 0
		if rt.slots != nil {
			c = rt.slots.hold(c)
		}
		switch {
		case rt.redirect != nil:
			rt.redirectLn.give(c)
		case rt.store == nil && rt.h2 == nil:
			rt.fastLn.give(c)
		default:
			select {
			case sem <- struct{}{}:
			case <-rt.stopAccept:
				c.Close()
				return
			}
			rt.sorting.Add(1)
			go func() {
				defer func() { <-sem; rt.sorting.Done() }()
				rt.sort(c)
			}()
		}
	}
}

// sort sends c to the server that speaks its protocol, or closes it.
func (rt *blockRuntime) sort(c net.Conn) {
	deadline := time.Now().Add(rt.handshakeLimit)
	if rt.store != nil {
		tc := tls.Server(c, rt.store.TLSConfig())
		if err := handshake(rt.ctx, tc, deadline); err != nil {
			tc.Close() // a scanner, a client that distrusts the certificate, a timeout: nothing to answer
			return
		}
		if tc.ConnectionState().NegotiatedProtocol == "h2" && rt.h2 != nil {
			rt.h2Ln.give(tc)
			return
		}
		rt.fastLn.give(tc)
		return
	}
	isH2, peeked, err := peekPreface(c, deadline)
	switch {
	case isH2:
		rt.h2Ln.give(newPeekedConn(c, peeked))
	case err != nil && len(peeked) == 0:
		c.Close() // nothing sent within read_header_timeout, or gone
	default:
		rt.fastLn.give(newPeekedConn(c, peeked))
	}
}

// stopAccepting ends the accept loop. The socket is closed when closeSock;
// otherwise it is left to the runtime that takes it over (a deadline in the
// past wakes Accept without closing the socket).
func (rt *blockRuntime) stopAccepting(closeSock bool) {
	select {
	case <-rt.stopAccept:
		return
	default:
	}
	close(rt.stopAccept)
	if closeSock {
		rt.sock.Close()
	} else if d, ok := rt.sock.(interface{ SetDeadline(time.Time) error }); ok {
		_ = d.SetDeadline(time.Unix(1, 0))
	}
	<-rt.acceptDone
	if !closeSock {
		if d, ok := rt.sock.(interface{ SetDeadline(time.Time) error }); ok {
			_ = d.SetDeadline(time.Time{})
		}
	}
}

// shutdown lets rt's requests in flight finish within ctx (then closes its
// connections), after stopAccepting; it returns ctx's error then.
func (rt *blockRuntime) shutdown(ctx context.Context) error {
	rt.sorting.Wait() // bounded by read_header_timeout
	var srvs []server
	if rt.fast != nil {
		srvs = append(srvs, rt.fast)
	}
	if rt.h2 != nil {
		srvs = append(srvs, rt.h2)
	}
	if rt.redirect != nil {
		srvs = append(srvs, rt.redirect)
	}
	errs := make(chan error, len(srvs))
	for _, srv := range srvs {
		go func() {
			err := srv.Shutdown(ctx)
			if err != nil {
				srv.Close()
			}
			errs <- err
		}()
	}
	var err error
	for range srvs {
		err = errors.Join(err, <-errs)
	}
	rt.cancel()
	rt.serving.Wait()
	return err
}

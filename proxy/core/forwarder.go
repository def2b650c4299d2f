package core

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/hashicorp/go-hclog"
)

// Forwarder is what both front-ends share: the routing table in use, the
// edge policy, the access log and the counters no route accounts for. The
// net/http front-end (Handler) embeds it; the fast lane reaches it through
// its Server's Handler. Safe for concurrent use.
type Forwarder struct {
	table  atomic.Pointer[route.Table]
	logger hclog.Logger
	access accesslog.Logger
	stats  HandlerStats         // see handlerstats.go
	edge   atomic.Pointer[Edge] // nil: trust nobody
}

// NewForwarder returns a Forwarder serving an empty table (every request is
// a 404) until Store is called.
func NewForwarder(logger hclog.Logger, access accesslog.Logger) *Forwarder {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	f := &Forwarder{logger: logger, access: access}
	f.table.Store(route.EmptyTable())
	return f
}

// EdgePolicy returns the edge policy in use; nil: trust nobody.
func (f *Forwarder) EdgePolicy() *Edge { return f.edge.Load() }

// AccessLog returns the access log; nil: none.
func (f *Forwarder) AccessLog() accesslog.Logger { return f.access }

// Edge is the handler's hostile-input policy that may change on reload. It
// is a plain value; SetEdge copies it.
type Edge struct {
	// TrustedProxies are the peers whose X-Forwarded-*, Forwarded and
	// X-Real-IP headers are kept (X-Forwarded-For appended to). From any
	// other peer they are replaced. Empty: trust nobody.
	TrustedProxies []netip.Prefix
}

// SetEdge swaps in a new edge policy. Safe for concurrent use.
func (f *Forwarder) SetEdge(e Edge) {
	e.TrustedProxies = append([]netip.Prefix(nil), e.TrustedProxies...)
	f.edge.Store(&e)
}

// Trusted reports whether the request's peer is a trusted proxy.
func (e *Edge) Trusted(remoteAddr string) bool {
	if e == nil || len(e.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return e.trustedIP(ap.Addr().Unmap())
}

// Stats returns the handler's own counters. Safe for concurrent use.
func (f *Forwarder) Stats() *HandlerStats { return &f.stats }

// RecordAnswered counts a request answered without forwarding.
func (f *Forwarder) RecordAnswered(p *Plan, status int, bytes int64, start time.Time) {
	if p.Route == nil {
		f.stats.Unroute(status)
		return
	}
	route.RecordRequest(p.Route, nil, status, bytes, time.Since(start), 0)
}

// Store swaps in a new table. Requests in flight keep the table they loaded.
// Safe for concurrent use.
func (f *Forwarder) Store(t *route.Table) {
	if t == nil {
		t = route.EmptyTable()
	}
	f.table.Store(t)
}

// Table returns the table in use; never nil. Safe for concurrent use.
func (f *Forwarder) Table() *route.Table { return f.table.Load() }

// ClientIP returns the address a request comes from for filters (rate
// limits keyed by client IP): the peer's, or, when the peer is a trusted
// proxy, the rightmost X-Forwarded-For entry that is not itself a trusted
// proxy (the leftmost when all are), as nginx's real_ip_recursive and
// Envoy's xff_num_trusted_hops read it. xff are the X-Forwarded-For values
// in order.
func (e *Edge) ClientIP(remoteAddr string, xff []string) string {
	peer := remoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		peer = host
	}
	if !e.Trusted(remoteAddr) {
		return peer
	}
	var hops []string
	for _, v := range xff {
		for h := range strings.SplitSeq(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(hops[i])
		if err != nil {
			return peer // not an address: trust stops here
		}
		if !e.trustedIP(ip.Unmap()) || i == 0 {
			return ip.Unmap().String()
		}
	}
	return peer
}

func (e *Edge) trustedIP(ip netip.Addr) bool {
	for _, p := range e.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

package config

import (
	"net/netip"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Limits is the limits block: the data plane's connection and request
// limits. Defaults follow Envoy's edge guidance, nginx and HAProxy; see
// DefaultLimits. A zero duration or count disables the limit where the
// field says so.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's head (slowloris).
	ReadHeaderTimeout time.Duration // default 10s
	// ReadTimeout bounds each pause while a request body is read (nginx's
	// client_body_timeout): not the whole body. 0: none.
	ReadTimeout time.Duration // default 60s
	// IdleTimeout bounds a keep-alive connection's wait for its next request.
	IdleTimeout time.Duration // default 75s
	// WriteIdleTimeout bounds each write to a client that stopped reading
	// (nginx's send_timeout). 0: none.
	WriteIdleTimeout time.Duration // default 60s
	// MaxHeaderBytes bounds a request's head (request line and headers): 431 beyond.
	MaxHeaderBytes int // default 65536
	// MaxHeaderCount bounds the header fields of a request: 431 beyond.
	MaxHeaderCount int // default 100
	// MaxConnections caps open client connections; more wait to be
	// accepted. 0: no cap.
	MaxConnections int // default 10000
}

// Defaults of the limits block and of the per-route and per-service limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultIdleTimeout       = 75 * time.Second
	DefaultWriteIdleTimeout  = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxHeaderCount    = 100
	DefaultMaxConnections    = 10000

	DefaultMaxBodyBytes = 100 << 20 // route.max_body_bytes
	DefaultMaxRequests  = 1024      // service.max_requests

	DefaultMaxPendingRequests = 4096            // service.max_pending_requests (see docs/configuration.md)
	DefaultQueueTimeout       = 5 * time.Second // service.queue_timeout

	// Bounds of max_header_bytes and max_header_count.
	minHeaderBytes = 1 << 10
	maxHeaderBytes = 1 << 20
	maxHeaderCount = 10000
)

// DefaultLimits returns the limits of a configuration without a limits
// block.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		WriteIdleTimeout:  DefaultWriteIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		MaxHeaderCount:    DefaultMaxHeaderCount,
		MaxConnections:    DefaultMaxConnections,
	}
}

type rawLimits struct {
	ReadHeaderTimeout *hcl.Attribute `hcl:"read_header_timeout,optional"`
	ReadTimeout       *hcl.Attribute `hcl:"read_timeout,optional"`
	IdleTimeout       *hcl.Attribute `hcl:"idle_timeout,optional"`
	WriteIdleTimeout  *hcl.Attribute `hcl:"write_idle_timeout,optional"`
	MaxHeaderBytes    *hcl.Attribute `hcl:"max_header_bytes,optional"`
	MaxHeaderCount    *hcl.Attribute `hcl:"max_header_count,optional"`
	MaxConnections    *hcl.Attribute `hcl:"max_connections,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// edge decodes trusted_proxies and the limits block.
func (d *decoder) edge(raw *rawConfig, cfg *Config) {
	var proxies []string
	if d.strList(raw.TrustedProxies, &proxies, "Invalid trusted proxy", func(s string) error {
		_, err := trustedProxy(s)
		return err
	}) {
		for _, s := range proxies {
			p, _ := trustedProxy(s)
			cfg.TrustedProxies = append(cfg.TrustedProxies, p)
		}
	}
	if raw.Limits != nil {
		d.limits(raw.Limits, &cfg.Limits)
	}
}

func (d *decoder) limits(rl *rawLimits, l *Limits) {
	d.duration(rl.ReadHeaderTimeout, &l.ReadHeaderTimeout, positive)
	d.duration(rl.ReadTimeout, &l.ReadTimeout, nonNegative)
	d.duration(rl.IdleTimeout, &l.IdleTimeout, positive)
	d.duration(rl.WriteIdleTimeout, &l.WriteIdleTimeout, nonNegative)
	d.integer(rl.MaxHeaderBytes, &l.MaxHeaderBytes, minHeaderBytes, maxHeaderBytes)
	d.integer(rl.MaxHeaderCount, &l.MaxHeaderCount, 1, maxHeaderCount)
	d.integer(rl.MaxConnections, &l.MaxConnections, 0, maxInt)
}

// byteSize decodes a non-negative number of bytes.
func (d *decoder) byteSize(attr *hcl.Attribute, dst *int64) bool {
	var n int
	if !d.integer(attr, &n, 0, maxInt) {
		return false
	}
	*dst = int64(n)
	return true
}

// trustedProxy parses one element of trusted_proxies: an IP address or a
// CIDR prefix, returned masked ("10.1.2.3/8" is "10.0.0.0/8").
func trustedProxy(s string) (netip.Prefix, error) {
	bad := reject("A trusted proxy must be an IP address or a CIDR prefix such as %q or %q, not %q", "10.0.0.5", "10.0.0.0/8", s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, bad
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, bad
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

package route

import (
	"crypto/tls"

	"github.com/ferry-proxy/ferry/proxy/upstream"
)

// upstreamClients keeps the service's upstream clients in step with spec:
// connections made with another TLS configuration (a reload gave a new one)
// are retired — the idle ones closed now, those in use when their exchange
// ends — and the HTTP/2 client exists exactly while the service's protocol
// is http2 or grpc, rebuilt when its TLS configuration or connect_timeout
// changes. A rebuild for a discovery change keeps everything: the spec's TLS
// configuration is built once per configuration load.
func (p *servicePool) upstreamClients(spec *ServiceSpec) {
	if p.tls != spec.TLS {
		for addr, cp := range p.conns {
			cp.CloseIdle(true)
			delete(p.conns, addr)
		}
		p.tls = spec.TLS
	}
	if !spec.H2() {
		p.closeH2()
		return
	}
	if p.h2 != nil && !p.h2.Same(spec.TLS, spec.ConnectTimeout) {
		p.closeH2()
	}
	if p.h2 == nil {
		p.h2 = upstream.NewH2(spec.TLS, spec.ConnectTimeout)
	}
}

// newPool returns the HTTP/1.1 pool of one instance.
func (p *servicePool) newPool(addr string, cfg *tls.Config) *upstream.Pool {
	if cfg == nil {
		return upstream.NewPool(addr)
	}
	return upstream.NewTLSPool(addr, cfg)
}

// closeH2 retires the HTTP/2 client: its idle connections close now, those
// carrying streams once the streams end and they have been idle for the
// transport's idle timeout.
func (p *servicePool) closeH2() {
	if p.h2 != nil {
		p.h2.Retire()
		p.h2 = nil
	}
}

package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// TLS and HTTP/2 (SPEC §12): listener blocks, the service's upstream
// protocol and TLS, and TLS and a token file for Consul.
//
// Certificate, key and CA files are read and parsed here, at load time, so
// that `ferry validate` and a reload report a missing or broken file with
// the file:line,column of the attribute naming it, before anything is
// served. A relative path is relative to the directory of the configuration
// file that names it (as Caddy and Terraform do), so that a configuration
// directory can carry its certificates whatever the working directory.

// Listener is a listener block: one address ferry serves the data plane on.
type Listener struct {
	Name    string
	Address string       // host:port
	TLS     *ListenerTLS // nil: cleartext
	// HTTP2 offers h2 by ALPN on a TLS listener, and accepts h2c with prior
	// knowledge on a plain one. Default false.
	HTTP2 bool
	// RedirectHTTPS, on a plain listener only, answers every request with a
	// 308 to this URL prefix ("https://{host}:8443"; {host} is the request's
	// host without its port), the request's path and query appended. ""
	// (default): proxy as usual.
	RedirectHTTPS string
}

// ListenerTLS is a listener's tls block.
type ListenerTLS struct {
	// Certificates in declaration order; the first is served to clients
	// whose SNI matches none (or who send none). At least one.
	Certificates []CertificateFiles
	// MinVersion is tls.VersionTLS12 (default, "1.2") or tls.VersionTLS13
	// ("1.3").
	MinVersion uint16
	// ClientCAFile, when set, makes the listener require client
	// certificates signed by one of its CAs (PEM).
	ClientCAFile string
}

// CertificateFiles is a certificate block: a PEM certificate chain (leaf
// first) and its private key, both paths resolved against the file that
// names them.
type CertificateFiles struct {
	CertFile string
	KeyFile  string
}

// Service protocols (service.protocol).
const (
	ProtocolHTTP1 = "http1"
	ProtocolHTTP2 = "http2"
	ProtocolGRPC  = "grpc"
)

var protocols = []string{ProtocolHTTP1, ProtocolHTTP2, ProtocolGRPC}

// UpstreamProtocol is the protocol ferry speaks to the service's instances:
// Protocol, or ProtocolHTTP1 when it is not set.
func (s *Service) UpstreamProtocol() string {
	if s.Protocol == "" {
		return ProtocolHTTP1
	}
	return s.Protocol
}

// UpstreamTLS is a service's tls block: TLS from ferry to its instances.
// Decoded and validated here; cmd/ferry builds its tls.Config once per load
// (upstream_tls.go) and the upstream clients apply it.
type UpstreamTLS struct {
	CAFile     string // PEM roots; "" uses the system's
	ServerName string // SNI and the name verified; "" uses the instance address
	CertFile   string // client certificate for mTLS; with KeyFile or neither
	KeyFile    string
}

// ConsulTLS is the consul block's tls block. Empty strings fall back on
// Consul's environment ($CONSUL_CACERT, $CONSUL_CLIENT_CERT,
// $CONSUL_CLIENT_KEY, $CONSUL_TLS_SERVER_NAME), applied by cmd.
type ConsulTLS struct {
	// Enabled: a tls block is present, so the agent is reached over HTTPS
	// even when the address has no https:// scheme.
	Enabled    bool
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
}

type rawListener struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`

	Address       *hcl.Attribute `hcl:"address,optional"`
	HTTP2         *hcl.Attribute `hcl:"http2,optional"`
	RedirectHTTPS *hcl.Attribute `hcl:"redirect_https,optional"`

	TLS []*rawListenerTLS `hcl:"tls,block"`
}

type rawListenerTLS struct {
	Certificates []*rawCertificate `hcl:"certificate,block"`
	MinVersion   *hcl.Attribute    `hcl:"min_version,optional"`
	ClientCAFile *hcl.Attribute    `hcl:"client_ca_file,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawCertificate struct {
	CertFile *hcl.Attribute `hcl:"cert_file,optional"`
	KeyFile  *hcl.Attribute `hcl:"key_file,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

type rawUpstreamTLS struct {
	CAFile     *hcl.Attribute `hcl:"ca_file,optional"`
	ServerName *hcl.Attribute `hcl:"server_name,optional"`
	CertFile   *hcl.Attribute `hcl:"cert_file,optional"`
	KeyFile    *hcl.Attribute `hcl:"key_file,optional"`

	DefRange hcl.Range `hcl:",def_range"`
}

// rawConsulTLS has the attributes of rawUpstreamTLS.
type rawConsulTLS = rawUpstreamTLS

// tlsVersions maps min_version values.
var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// listeners decodes the listener blocks. The listen shorthand and listener
// blocks merge: listen (when set) is one more plain listener. When only
// listener blocks are given, listen's default is not bound (Config.Listen
// is ""), so that a TLS-only configuration opens no cleartext port.
func (d *decoder) listeners(raw *rawConfig, cfg *Config) {
	if len(raw.Listeners) == 0 {
		return
	}
	if raw.Listen == nil {
		cfg.Listen = ""
	}
	names := make(map[string]hcl.Range)
	addrs := make(map[string]hcl.Range)
	if cfg.Listen != "" && raw.Listen != nil {
		addrs[cfg.Listen] = raw.Listen.Expr.Range()
	}
	if cfg.Admin != "" && raw.Admin != nil {
		addrs[cfg.Admin] = raw.Admin.Expr.Range()
	} else if cfg.Admin != "" {
		addrs[cfg.Admin] = hcl.Range{}
	}
	for _, rl := range raw.Listeners {
		l := d.listener(rl)
		if first, dup := names[rl.Name]; dup {
			d.errorf(rl.NameRange, fmt.Sprintf("Duplicate listener %q", rl.Name),
				"Listener names must be unique; %s.", firstDefinedHere(first))
			continue
		}
		names[rl.Name] = rl.DefRange
		if l == nil {
			continue
		}
		if first, dup := addrs[l.Address]; dup && !portZero(l.Address) {
			where := "it is the admin address"
			if first.Filename != "" {
				where = firstDefinedHere(first)
			}
			d.errorf(rl.Address.Expr.Range(), "Duplicate listener address",
				"Each listener, listen and admin need an address of their own; %q is used already (%s).", l.Address, where)
			continue
		}
		addrs[l.Address] = rl.Address.Expr.Range()
		cfg.Listeners = append(cfg.Listeners, l)
	}
}

func portZero(addr string) bool { return strings.HasSuffix(addr, ":0") }

// listener decodes one listener block; nil when it is invalid.
func (d *decoder) listener(rl *rawListener) *Listener {
	before := len(d.diags)
	l := &Listener{Name: rl.Name}
	if err := consulName("listener")(rl.Name); err != nil {
		d.errorf(rl.NameRange, "Invalid listener name", "%s.", err)
	}
	d.requiredStr(rl.Address, "address", rl.DefRange, &l.Address, "Invalid listener address",
		`A listener needs an address, such as address = "0.0.0.0:8443".`, hostPort("listener address"))
	d.boolean(rl.HTTP2, &l.HTTP2)
	d.str(rl.RedirectHTTPS, &l.RedirectHTTPS, "Invalid redirect_https", redirectURL)

	t, extra, more := onlyOne(rl.TLS, "tls", func(b *rawListenerTLS) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if t != nil {
		l.TLS = d.listenerTLS(t)
	}
	for _, b := range extra {
		d.listenerTLS(b)
	}
	if t != nil && l.RedirectHTTPS != "" {
		d.errorf(rl.RedirectHTTPS.NameRange, "redirect_https on a TLS listener",
			"redirect_https belongs on a plain listener (it sends clients to HTTPS); this listener has a tls block at %s.", posString(t.DefRange))
	}
	if len(d.diags) != before {
		return nil
	}
	return l
}

func (d *decoder) listenerTLS(rt *rawListenerTLS) *ListenerTLS {
	t := &ListenerTLS{MinVersion: tls.VersionTLS12}
	if len(rt.Certificates) == 0 {
		d.errorf(rt.DefRange, "Missing certificate",
			`A tls block needs at least one certificate block with cert_file and key_file (PEM files).`)
	}
	for _, rc := range rt.Certificates {
		var c CertificateFiles
		if d.keyPair(rc.CertFile, rc.KeyFile, rc.DefRange, &c.CertFile, &c.KeyFile, true) {
			t.Certificates = append(t.Certificates, c)
		}
	}
	var v string
	if d.str(rt.MinVersion, &v, "Invalid min_version", oneOf("min_version", "1.2", "1.3")) {
		t.MinVersion = tlsVersions[v]
	}
	d.file(rt.ClientCAFile, &t.ClientCAFile, "Invalid client_ca_file", checkCAFile)
	return t
}

// redirectURL checks redirect_https: an https:// URL with a host (which may
// be or contain "{host}") and an optional port, and no path, query or
// fragment: the request's own are appended.
func redirectURL(s string) (string, error) {
	bad := reject(`The redirect_https must be "" or an https:// URL without a path, such as "https://{host}" or "https://{host}:8443", not %q`, s)
	if s == "" {
		return s, nil
	}
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok || rest == "" || hasSpaceOrControl(rest) || strings.ContainsAny(rest, "/?#@\\") {
		return "", bad
	}
	if strings.ContainsAny(strings.ReplaceAll(rest, "{host}", ""), "{}") {
		return "", reject(`The redirect_https %q has a placeholder other than {host}`, s)
	}
	return s, nil
}

// upstream decodes a service's protocol and tls block.
func (d *decoder) upstream(rs *rawService, s *Service) {
	d.str(rs.Protocol, &s.Protocol, "Unknown protocol", oneOf("protocol", protocols...))
	t, extra, more := onlyOne(rs.TLS, "tls", func(b *rawUpstreamTLS) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if t != nil {
		s.TLS = d.upstreamTLS(t)
	}
	for _, b := range extra {
		d.upstreamTLS(b)
	}
}

func (d *decoder) upstreamTLS(rt *rawUpstreamTLS) *UpstreamTLS {
	t := &UpstreamTLS{}
	d.tlsClient(rt, &t.CAFile, &t.ServerName, &t.CertFile, &t.KeyFile)
	return t
}

// tlsClient decodes the attributes shared by a service's and Consul's tls
// blocks.
func (d *decoder) tlsClient(rt *rawUpstreamTLS, ca, serverName, cert, key *string) {
	d.file(rt.CAFile, ca, "Invalid ca_file", checkCAFile)
	d.str(rt.ServerName, serverName, "Invalid server_name", noSpace("server_name"))
	d.keyPair(rt.CertFile, rt.KeyFile, rt.DefRange, cert, key, false)
}

// consulTLS decodes token_file and the tls block of the consul block, and
// checks the scheme of its address.
func (d *decoder) consulTLS(rc *rawConsul, c *Consul) {
	if rc.Address != nil {
		var addr string
		if d.str(rc.Address, &addr, "Invalid Consul address", consulScheme) && strings.HasPrefix(addr, "http://") && len(rc.TLS) > 0 {
			d.errorf(rc.Address.Expr.Range(), "Consul tls block with an http:// address",
				"A tls block means TLS to the agent; use an https:// address (or one without a scheme), not %q.", addr)
		}
	}
	if d.file(rc.TokenFile, &c.TokenFile, "Invalid token_file", checkTokenFile) && rc.Token != nil {
		d.errorf(rc.TokenFile.NameRange, "Conflicting Consul token settings",
			"Set either token or token_file, not both; token is set at %s.", posString(rc.Token.NameRange))
	}
	t, extra, more := onlyOne(rc.TLS, "tls", func(b *rawConsulTLS) hcl.Range { return b.DefRange })
	d.diags = append(d.diags, more...)
	if t != nil {
		c.TLS.Enabled = true
		d.tlsClient(t, &c.TLS.CAFile, &c.TLS.ServerName, &c.TLS.CertFile, &c.TLS.KeyFile)
	}
	for _, b := range extra {
		var x ConsulTLS
		d.tlsClient(b, &x.CAFile, &x.ServerName, &x.CertFile, &x.KeyFile)
	}
}

// consulScheme accepts host:port, or a URL of scheme http, https or unix.
func consulScheme(s string) (string, error) {
	scheme, _, ok := strings.Cut(s, "://")
	if ok && scheme != "http" && scheme != "https" && scheme != "unix" {
		return "", reject(`The Consul address must be host:port or an http://, https:// or unix:// URL, not %q`, s)
	}
	return s, nil
}

// file decodes a path attribute, resolves it against the directory of the
// file that sets it, and runs check on the result (nil: only that it can be
// read). An empty string means "not set".
func (d *decoder) file(attr *hcl.Attribute, dst *string, summary string, check func(path string) error) bool {
	var p string
	if !d.str(attr, &p, summary, nil) || p == "" {
		return false
	}
	p = resolvePath(attr, p)
	if err := check(p); err != nil {
		d.errorf(attr.Expr.Range(), summary, "%s.", err)
		return false
	}
	*dst = p
	return true
}

// resolvePath makes p relative to the directory of the configuration file
// holding attr.
func resolvePath(attr *hcl.Attribute, p string) string {
	if filepath.IsAbs(p) || attr.Expr.Range().Filename == "" {
		return p
	}
	return filepath.Join(filepath.Dir(attr.Expr.Range().Filename), p)
}

// keyPair decodes a cert_file and key_file pair: both or (unless required)
// neither. The certificate must hold a PEM chain and the key must match it.
func (d *decoder) keyPair(certAttr, keyAttr *hcl.Attribute, block hcl.Range, cert, key *string, required bool) bool {
	var c, k string
	before := len(d.diags)
	certOK := d.file(certAttr, &c, "Invalid cert_file", checkCertFile)
	keyOK := d.file(keyAttr, &k, "Invalid key_file", readable)
	if len(d.diags) != before {
		return false
	}
	switch {
	case certOK && !keyOK:
		d.required(keyAttr, "key_file", block, "A cert_file needs the key_file of its private key (PEM).")
		return false
	case keyOK && !certOK:
		d.required(certAttr, "cert_file", block, "A key_file needs the cert_file of its certificate chain (PEM).")
		return false
	case !certOK:
		if required {
			d.required(certAttr, "cert_file", block, "A certificate needs cert_file (a PEM certificate chain, leaf first) and key_file (its private key).")
		}
		return false
	}
	if _, err := tls.LoadX509KeyPair(c, k); err != nil {
		d.errorf(keyAttr.Expr.Range(), "Invalid key_file",
			"The key in %s does not go with the certificate in %s: %s.", k, c, strings.TrimPrefix(err.Error(), "tls: "))
		return false
	}
	*cert, *key = c, k
	return true
}

// readable checks that path can be read.
func readable(path string) error {
	if _, err := os.ReadFile(path); err != nil {
		return reject("Cannot read %s: %s", path, unwrapPathError(err))
	}
	return nil
}

// checkCertFile checks that path holds at least one PEM certificate and
// that every certificate in it parses.
func checkCertFile(path string) error {
	certs, err := readCerts(path)
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		return reject("The file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return nil
}

// checkCAFile is checkCertFile for a CA bundle.
func checkCAFile(path string) error { return checkCertFile(path) }

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, reject("Cannot read %s: %s", path, unwrapPathError(err))
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, reject("The file %s holds a certificate that does not parse: %s", path, err)
		}
		out = append(out, c)
	}
}

// checkTokenFile checks that a token file can be read and holds one token.
func checkTokenFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return reject("Cannot read %s: %s", path, unwrapPathError(err))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return reject("The token file %s is empty", path)
	}
	if hasSpaceOrControl(tok) {
		// Never echo a token.
		return reject("The token file %s must hold one token, without white space or control characters inside it", path)
	}
	return nil
}

// unwrapPathError drops the path an *os.PathError repeats.
func unwrapPathError(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

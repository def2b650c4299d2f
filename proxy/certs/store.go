// Package certs holds a TLS listener's certificates: several PEM chains
// chosen by SNI, the listener's TLS settings, and reloading from their
// files without dropping a connection.
//
// A Store's tls.Config (TLSConfig) reads the current settings from an atomic
// pointer for every handshake (GetConfigForClient), so a reload — a file
// changed on disk (Run polls) or Reload (SIGHUP) — applies to the next
// handshake while established connections keep the certificate they were
// made with. A file that is missing or broken at reload keeps the old
// certificate, logs why and counts a failure (Stats); nothing is half
// applied: a certificate's chain and key are taken together or not at all.
//
// A certificate within ExpiryWarning (14 days) of its expiry is logged as a
// warning (an error once expired) at most once per certificate per UTC day:
// when the store is made, after a reload, and at the first poll of each new
// day (checkExpiry).
//
// TLS settings are Go's modern defaults: TLS 1.2 or 1.3 (MinVersion), and
// Go's default cipher suites and curves, which since Go 1.22 offer only
// ECDHE key exchange with AEAD or, last, CBC ciphers for TLS 1.2, and
// X25519MLKEM768 first. No custom list: Go's order tracks the hardware
// (AES-GCM first with AES-NI, ChaCha20 otherwise), and a list we wrote
// would only age.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Pair names a certificate chain (PEM, leaf first) and its private key.
type Pair struct {
	CertFile string
	KeyFile  string
}

// Options configures a Store.
type Options struct {
	// Certificates in order; the first is the default, served when the
	// client's SNI matches no certificate's names or is absent. At least one.
	Certificates []Pair
	// MinVersion is tls.VersionTLS12 or tls.VersionTLS13; 0 means 1.2.
	MinVersion uint16
	// ClientCAFile, when set, requires client certificates signed by one
	// of its CAs (PEM).
	ClientCAFile string
	// HTTP2 offers "h2" before "http/1.1" by ALPN.
	HTTP2 bool
	// Interval between polls of the files in Run; 0 means DefaultInterval.
	Interval time.Duration
	Logger   hclog.Logger // nil: no logging
	// Now is the clock of the expiry warnings; nil means time.Now.
	Now func() time.Time
	// Replaces is the store this one takes over from (the same listener,
	// rebuilt by a reload), or nil: the expiry warnings it logged today are
	// not repeated.
	Replaces *Store
}

// ExpiryWarning is how long before a certificate's notAfter the log starts
// warning that it expires (see Store.checkExpiry).
const ExpiryWarning = 14 * 24 * time.Hour

// DefaultInterval is how often Run looks at the files: often enough that a
// renewed certificate is served within seconds, rarely enough to cost nothing.
const DefaultInterval = 5 * time.Second

// Store serves a listener's certificates and TLS settings. Safe for
// concurrent use.
type Store struct {
	opts   Options
	logger hclog.Logger
	cur    atomic.Pointer[state]
	base   *tls.Config

	mu sync.Mutex // serializes loads and expiry checks
	// warned is, per certificate (its file and content), the UTC day its
	// expiry was last logged; guarded by mu.
	warned map[certKey]string

	reloads, failures atomic.Uint64
}

// state is one immutable set of loaded certificates and the tls.Config
// handshakes use.
type state struct {
	certs     []*loaded
	exact     map[string]*tls.Certificate // lower-case DNS name
	wildcard  map[string]*tls.Certificate // "example.com" for "*.example.com"
	clientCA  *file                       // nil without client_ca_file
	config    *tls.Config
	loadedAt  time.Time
	lastError string
}

// loaded is one certificate with the files it came from.
type loaded struct {
	pair      Pair
	cert      *tls.Certificate
	cf, kf    *file
	names     []string
	notAfter  time.Time
	notBefore time.Time
	// lastError is why the last load of pair failed while this (older)
	// certificate is kept; "" when the files loaded.
	lastError string
}

// certKey identifies a certificate for the expiry warnings: a renewed
// certificate in the same file is another one.
type certKey struct {
	file string
	sum  [32]byte
}

// New loads every file named in opts and returns a Store serving them; an
// error names the file that could not be used. (config checks the same
// files at load time, so this fails only if they changed in between.)
func New(opts Options) (*Store, error) {
	if len(opts.Certificates) == 0 {
		return nil, errors.New("certs: no certificate")
	}
	if opts.MinVersion == 0 {
		opts.MinVersion = tls.VersionTLS12
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Store{opts: opts, logger: logger, warned: make(map[certKey]string)}
	if prev := opts.Replaces; prev != nil {
		prev.mu.Lock()
		for k, day := range prev.warned {
			s.warned[k] = day
		}
		prev.mu.Unlock()
		s.opts.Replaces = nil // do not keep the old store alive
	}
	st, errs := s.load(nil)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.cur.Store(st)
	s.checkExpiry()
	s.base = &tls.Config{
		MinVersion: opts.MinVersion,
		NextProtos: st.config.NextProtos,
		// Every handshake takes the current settings, so a reload applies
		// to new connections at once and never touches established ones.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().config, nil
		},
	}
	return s, nil
}

// TLSConfig returns the listener's tls.Config. It stays valid across
// reloads; do not modify it.
func (s *Store) TLSConfig() *tls.Config { return s.base }

// Reload reads every file again (SIGHUP, or a changed file) and applies what
// loads: a certificate whose files are missing or broken keeps the one being
// served, and the returned error (also logged) says why.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(true)
}

func (s *Store) reloadLocked(force bool) error {
	old := s.cur.Load()
	if !force && !old.changed() {
		return nil
	}
	st, errs := s.load(old)
	err := errors.Join(errs...)
	if err != nil {
		st.lastError = err.Error()
		// A broken file is counted and logged once, not at every poll.
		if force || st.lastError != old.lastError {
			s.failures.Add(1)
			s.logger.Error("cannot load a certificate file; keeping the certificate being served", "error", st.lastError)
		}
	}
	// Stored even when nothing served changed: it holds the new file
	// stamps, so the next poll does not read the files again.
	s.cur.Store(st)
	if !st.sameAs(old) {
		s.reloads.Add(1)
		s.logger.Info("certificates reloaded", "certificates", len(st.certs), "names", st.allNames())
	}
	s.checkExpiry()
	return err
}

// load builds a state from the files. For a certificate (or the client CA)
// that cannot be loaded, the one in prev is kept (and an error returned);
// without prev (the first load) there is nothing to keep.
func (s *Store) load(prev *state) (*state, []error) {
	st := &state{exact: make(map[string]*tls.Certificate), wildcard: make(map[string]*tls.Certificate), loadedAt: time.Now()}
	var errs []error
	for i, p := range s.opts.Certificates {
		l, err := loadPair(p)
		if err != nil {
			errs = append(errs, err)
			if prev == nil {
				continue
			}
			kept := *prev.certs[i]
			kept.lastError = err.Error()
			l = &kept
		}
		st.certs = append(st.certs, l)
	}
	// First certificate naming a host wins, as it would in nginx's order.
	for _, l := range st.certs {
		for _, n := range l.names {
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := st.wildcard[rest]; !dup {
					st.wildcard[rest] = l.cert
				}
			} else if _, dup := st.exact[n]; !dup {
				st.exact[n] = l.cert
			}
		}
	}
	cfg := &tls.Config{
		MinVersion:     s.opts.MinVersion,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: st.certificate,
	}
	if s.opts.HTTP2 {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	if s.opts.ClientCAFile != "" {
		f, pool, err := loadCAs(s.opts.ClientCAFile)
		if err != nil {
			errs = append(errs, err)
			if prev != nil {
				f = prev.clientCA
				pool = prev.config.ClientCAs
			}
		}
		st.clientCA = f
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pool
	}
	st.config = cfg
	return st, errs
}

// certificate picks the certificate for a handshake: the one naming the SNI
// host exactly, else a wildcard naming its parent, else the first.
func (st *state) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	if name != "" {
		if c := st.exact[name]; c != nil {
			return c, nil
		}
		if _, parent, ok := strings.Cut(name, "."); ok {
			if c := st.wildcard[parent]; c != nil {
				return c, nil
			}
		}
	}
	if len(st.certs) == 0 {
		return nil, errors.New("certs: no certificate loaded")
	}
	return st.certs[0].cert, nil
}

// changed reports whether any file differs from what st was loaded from.
func (st *state) changed() bool {
	for _, l := range st.certs {
		if l.cf.changed() || l.kf.changed() {
			return true
		}
	}
	return st.clientCA != nil && st.clientCA.changed()
}

// sameAs reports whether st serves exactly what old serves.
func (st *state) sameAs(old *state) bool {
	if len(st.certs) != len(old.certs) || (st.clientCA == nil) != (old.clientCA == nil) {
		return false
	}
	for i, l := range st.certs {
		if l.cf.sum != old.certs[i].cf.sum || l.kf.sum != old.certs[i].kf.sum {
			return false
		}
	}
	return st.clientCA == nil || st.clientCA.sum == old.clientCA.sum
}

func (st *state) allNames() []string {
	var out []string
	for _, l := range st.certs {
		out = append(out, l.names...)
	}
	return out
}

// loadPair reads and parses a certificate chain and its key.
func loadPair(p Pair) (*loaded, error) {
	cf, err := readFile(p.CertFile)
	if err != nil {
		return nil, err
	}
	kf, err := readFile(p.KeyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(cf.data, kf.data)
	if err != nil {
		return nil, fmt.Errorf("certs: %s with %s: %w", p.CertFile, p.KeyFile, err)
	}
	leaf := cert.Leaf // set by X509KeyPair since Go 1.23
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: %s: %w", p.CertFile, err)
		}
	}
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName} // a legacy certificate without SANs
	}
	lower := make([]string, len(names))
	for i, n := range names {
		lower[i] = strings.TrimSuffix(strings.ToLower(n), ".")
	}
	cf.data, kf.data = nil, nil // keep the stamps, not the key material
	return &loaded{pair: p, cert: &cert, cf: cf, kf: kf, names: lower, notAfter: leaf.NotAfter, notBefore: leaf.NotBefore}, nil
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(path string) (*file, *x509.CertPool, error) {
	f, err := readFile(path)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.data) {
		return nil, nil, fmt.Errorf("certs: %s holds no PEM certificate", path)
	}
	f.data = nil
	return f, pool, nil
}

// Stats is what a Store has done, for metrics and the admin API.
type Stats struct {
	Reloads      uint64 // swaps of the served certificates after the first load
	Failures     uint64 // reloads that found a missing or broken file
	LastError    string // the last failure, "" when the last reload was clean
	LoadedAt     time.Time
	Certificates []CertificateInfo
}

// CertificateInfo describes one served certificate.
type CertificateInfo struct {
	CertFile  string
	KeyFile   string
	Names     []string // DNS names (wildcards as "*.example.com")
	NotBefore time.Time
	NotAfter  time.Time
	// LastError is why the last reload of these files failed (the
	// certificate served is then the one loaded before); "" when it loaded.
	LastError string
}

// Stats returns the store's counters and the certificates being served.
func (s *Store) Stats() Stats {
	st := s.cur.Load()
	out := Stats{Reloads: s.reloads.Load(), Failures: s.failures.Load(), LoadedAt: st.loadedAt, LastError: st.lastError}
	for _, l := range st.certs {
		out.Certificates = append(out.Certificates, CertificateInfo{
			CertFile: l.pair.CertFile, KeyFile: l.pair.KeyFile, Names: append([]string(nil), l.names...),
			NotBefore: l.notBefore, NotAfter: l.notAfter, LastError: l.lastError,
		})
	}
	return out
}

// checkExpiry logs a warning for each certificate served that expires
// within ExpiryWarning (an error once it has expired), at most once per
// certificate per UTC day: a certificate is its file and content, so a
// renewal that is still close to expiry is reported again. It runs when the
// store is made, after each reload and at each poll of Run (so on the first
// poll of each new UTC day). The caller holds mu, or owns s (New).
func (s *Store) checkExpiry() {
	now := s.opts.Now()
	today := now.UTC().Format(time.DateOnly)
	seen := make(map[certKey]bool)
	for _, l := range s.cur.Load().certs {
		k := certKey{file: l.pair.CertFile, sum: l.cf.sum}
		seen[k] = true
		left := l.notAfter.Sub(now)
		if left >= ExpiryWarning || s.warned[k] == today {
			continue
		}
		s.warned[k] = today
		args := []any{"cert_file", l.pair.CertFile, "names", l.names,
			"not_after", l.notAfter.UTC().Format(time.RFC3339), "days_left", DaysLeft(l.notAfter, now)}
		if left <= 0 {
			s.logger.Error("a certificate being served has expired; clients refuse it: renew it (ferry reloads the file when it changes)", args...)
			continue
		}
		s.logger.Warn("a certificate expires in less than 14 days: renew it (ferry reloads the file when it changes)", args...)
	}
	for k := range s.warned {
		if !seen[k] {
			delete(s.warned, k)
		}
	}
}

// DaysLeft is the whole days from now to notAfter, rounded down: 0 on its
// last day, negative once it has expired.
func DaysLeft(notAfter, now time.Time) int {
	d := notAfter.Sub(now)
	days := int(d / (24 * time.Hour))
	if d < 0 && d%(24*time.Hour) != 0 {
		days--
	}
	return days
}

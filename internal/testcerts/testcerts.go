// Package testcerts makes real X.509 certificates for tests: a CA and leaf
// certificates it signs (ECDSA P-256, as an edge deployment would use),
// written as PEM files. Nothing here is for production use.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	// File is the CA certificate as a PEM file, for ca_file and
	// client_ca_file.
	File string
	Pool *x509.CertPool

	tb  testing.TB
	dir string
}

// NewCA makes a CA named name whose files go to a temporary directory of tb.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("testcerts: CA: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, Key: key, tb: tb, dir: tb.TempDir()}
	ca.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	ca.File = filepath.Join(ca.dir, name+"-ca.pem")
	write(tb, ca.File, ca.CertPEM)
	ca.Pool = x509.NewCertPool()
	ca.Pool.AddCert(cert)
	return ca
}

// Leaf is a certificate signed by a CA, with its key.
type Leaf struct {
	Cert              *x509.Certificate
	CertPEM, KeyPEM   []byte // CertPEM is the chain: the leaf, then the CA
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// Leaf makes a certificate for names (DNS names, "*.example.com" wildcards
// or IP addresses), usable by servers and clients, and writes it as
// <file>.crt (chain) and <file>.key.
func (ca *CA) Leaf(file string, names ...string) *Leaf {
	ca.tb.Helper()
	return ca.LeafUntil(time.Now().Add(24*time.Hour), file, names...)
}

// LeafUntil is Leaf with notAfter as the certificate's expiry (its validity
// starts an hour before now, or an hour before notAfter when that is
// earlier, so an expired certificate can be made too).
func (ca *CA) LeafUntil(notAfter time.Time, file string, names ...string) *Leaf {
	ca.tb.Helper()
	key := newKey(ca.tb)
	notBefore := time.Now().Add(-time.Hour)
	if notAfter.Before(notBefore) {
		notBefore = notAfter.Add(-time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.tb),
		Subject:      pkix.Name{CommonName: file},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		ca.tb.Fatalf("testcerts: leaf: %v", err)
	}
	l := &Leaf{}
	l.Cert, _ = x509.ParseCertificate(der)
	l.CertPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.CertPEM...)
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.tb.Fatalf("testcerts: key: %v", err)
	}
	l.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	l.CertFile = filepath.Join(ca.dir, file+".crt")
	l.KeyFile = filepath.Join(ca.dir, file+".key")
	write(ca.tb, l.CertFile, l.CertPEM)
	write(ca.tb, l.KeyFile, l.KeyPEM)
	l.TLS, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		ca.tb.Fatalf("testcerts: pair: %v", err)
	}
	return l
}

// WriteTo writes the leaf's chain and key to certFile and keyFile, each
// through a temporary file and a rename, as certificate tooling does
// (certbot, cert-manager), so a reader never sees half a file.
func (l *Leaf) WriteTo(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	for _, f := range []struct {
		path string
		b    []byte
	}{{certFile, l.CertPEM}, {keyFile, l.KeyPEM}} {
		tmp := f.path + ".tmp"
		write(tb, tmp, f.b)
		if err := os.Rename(tmp, f.path); err != nil {
			tb.Fatal(err)
		}
	}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testcerts: key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func write(tb testing.TB, path string, b []byte) {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatalf("testcerts: %v", err)
	}
}

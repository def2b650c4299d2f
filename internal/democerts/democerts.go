// Package democerts writes the certificates of the TLS examples and
// benchmarks: a CA and leaf certificates it signs, ECDSA P-256 (what an edge
// deployment serves today), as PEM files. Certificates cannot be committed,
// so `make tls-demo-certs` and the benchmark generate them. Not for
// production: the CA's key is written beside its certificate.
package democerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Validity is how long the generated certificates are valid.
const Validity = 90 * 24 * time.Hour

// Leaf names one certificate to make: <File>.crt (its chain: the leaf, then
// the CA) and <File>.key, for Names (DNS names, wildcards, IP addresses).
type Leaf struct {
	File  string
	Names []string
}

// Edge is what the TLS edge example (examples/tls-edge) serves: one
// certificate for shop.example and localhost (and 127.0.0.1), one for
// *.apps.example, and a client certificate for the mTLS listener.
var Edge = []Leaf{
	{File: "shop", Names: []string{"shop.example", "www.shop.example", "localhost", "127.0.0.1"}},
	{File: "apps", Names: []string{"*.apps.example"}},
	{File: "client", Names: []string{"client.internal"}},
}

// Write makes a CA (ca.pem, ca.key) and the leaves in dir, created if
// needed, replacing files there.
func Write(dir string, leaves []Leaf) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ferry demo CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := write(filepath.Join(dir, "ca.pem"), caPEM, 0o644); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, "ca.key"), caKey); err != nil {
		return err
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: l.Names[0]},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(Validity),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		for _, n := range l.Names {
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return fmt.Errorf("democerts: %s: %w", l.File, err)
		}
		chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caPEM...)
		if err := write(filepath.Join(dir, l.File+".crt"), chain, 0o644); err != nil {
			return err
		}
		if err := writeKey(filepath.Join(dir, l.File+".key"), key); err != nil {
			return err
		}
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return write(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// write replaces path through a temporary file and a rename, so that a
// ferry polling it never reads half a file.
func write(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSEdgeExample: examples/tls-edge/edge.hcl names certificates that
// `make tls-demo-certs` generates (bin/tls-demo/, relative to the
// repository). In a copy of that layout, `ferry validate` refuses the
// configuration before they exist, naming the files, and accepts it once the
// target's command (the gencerts program) has written them; each generated
// certificate verifies against the generated CA for its names.
func TestTLSEdgeExample(t *testing.T) {
	root := t.TempDir()
	cfg := filepath.Join(root, "examples", "tls-edge", "edge.hcl")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../examples/tls-edge/edge.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ferryBin, "validate", "-config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "shop.crt") {
		t.Fatalf("validate without the certificates: %v, want an error naming shop.crt\n%s", err, out)
	}

	// What make tls-demo-certs runs, with the directory of this layout.
	dir := filepath.Join(root, "bin", "tls-demo")
	gen := exec.Command("go", "run", "./examples/tls-edge/gencerts", "-dir", dir)
	gen.Dir = ".."
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("gencerts: %v\n%s", err, out)
	}
	if out, err := exec.Command(ferryBin, "validate", "-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("validate %s with the generated certificates: %v\n%s", cfg, err, out)
	}

	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil || !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.pem: %v", err)
	}
	for file, name := range map[string]string{"shop": "localhost", "apps": "x.apps.example", "client": ""} {
		b, err := os.ReadFile(filepath.Join(dir, file+".crt"))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			t.Fatalf("%s.crt: no PEM block", file)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		usage := x509.ExtKeyUsageServerAuth
		if name == "" {
			usage = x509.ExtKeyUsageClientAuth
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("%s.crt for %q: %v", file, name, err)
		}
		if cert.PublicKeyAlgorithm != x509.ECDSA {
			t.Errorf("%s.crt: %v key, want ECDSA P-256", file, cert.PublicKeyAlgorithm)
		}
	}
}

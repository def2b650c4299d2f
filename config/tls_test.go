package config

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// tlsFiles makes a CA, a leaf for shop.example and files that are broken in
// each way a user can break them.
type tlsFiles struct {
	ca                      *testcerts.CA
	shop, other             *testcerts.Leaf
	missing, garbage, token string
}

func newTLSFiles(t *testing.T) tlsFiles {
	ca := testcerts.NewCA(t, "test")
	f := tlsFiles{ca: ca, shop: ca.Leaf("shop", "shop.example"), other: ca.Leaf("other", "other.example")}
	dir := t.TempDir()
	f.missing = filepath.Join(dir, "missing.pem")
	f.garbage = filepath.Join(dir, "garbage.pem")
	f.token = filepath.Join(dir, "token")
	writeTestFile(t, f.garbage, "not a certificate\n")
	writeTestFile(t, f.token, "00000000-0000-0000-0000-00000000000a\n")
	return f
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sub replaces %SHOP_CRT%, %SHOP_KEY%, %OTHER_CRT%, %OTHER_KEY%, %CA%,
// %MISSING%, %GARBAGE% and %TOKEN% in src.
func (f tlsFiles) sub(src string) string {
	return strings.NewReplacer("%SHOP_CRT%", f.shop.CertFile, "%SHOP_KEY%", f.shop.KeyFile,
		"%OTHER_CRT%", f.other.CertFile, "%OTHER_KEY%", f.other.KeyFile, "%CA%", f.ca.File,
		"%MISSING%", f.missing, "%GARBAGE%", f.garbage, "%TOKEN%", f.token).Replace(src)
}

func TestListenerValues(t *testing.T) {
	f := newTLSFiles(t)
	cfg := parse(t, f.sub(`
listener "public" {
  address = "0.0.0.0:8443"
  tls {
    certificate {
      cert_file = "%SHOP_CRT%"
      key_file  = "%SHOP_KEY%"
    }
    certificate {
      cert_file = "%OTHER_CRT%"
      key_file  = "%OTHER_KEY%"
    }
    min_version    = "1.3"
    client_ca_file = "%CA%"
  }
  http2 = true
}
listener "redirect" {
  address        = "0.0.0.0:8080"
  redirect_https = "https://{host}:8443"
}
`))
	want := []*Listener{
		{Name: "public", Address: "0.0.0.0:8443", HTTP2: true, TLS: &ListenerTLS{
			Certificates: []CertificateFiles{{f.shop.CertFile, f.shop.KeyFile}, {f.other.CertFile, f.other.KeyFile}},
			MinVersion:   tls.VersionTLS13, ClientCAFile: f.ca.File,
		}},
		{Name: "redirect", Address: "0.0.0.0:8080", RedirectHTTPS: "https://{host}:8443"},
	}
	if !reflect.DeepEqual(cfg.Listeners, want) {
		t.Errorf("got %s, want %s", dump(cfg.Listeners), dump(want))
	}
	if cfg.Listen != "" {
		t.Errorf("Listen: got %q, want \"\" (listener blocks without listen bind no default)", cfg.Listen)
	}
}

func TestListenAndListenerMerge(t *testing.T) {
	cfg := parse(t, `
listen = "127.0.0.1:8080"
listener "h2c" {
  address = "127.0.0.1:8081"
  http2   = true
}
`)
	if cfg.Listen != "127.0.0.1:8080" || len(cfg.Listeners) != 1 || cfg.Listeners[0].TLS != nil || !cfg.Listeners[0].HTTP2 {
		t.Errorf("got listen %q and %s, want both listeners", cfg.Listen, dump(cfg.Listeners))
	}
	if def := parse(t, ``); def.Listen != DefaultListen || len(def.Listeners) != 0 {
		t.Errorf("without listener blocks: got %q %v, want the default listen", def.Listen, def.Listeners)
	}
}

func TestMinVersionDefault(t *testing.T) {
	f := newTLSFiles(t)
	cfg := parse(t, f.sub(`
listener "a" {
  address = ":8443"
  tls {
    certificate {
      cert_file = "%SHOP_CRT%"
      key_file  = "%SHOP_KEY%"
    }
  }
}`))
	if got := cfg.Listeners[0].TLS.MinVersion; got != tls.VersionTLS12 {
		t.Errorf("MinVersion: got %x, want TLS 1.2", got)
	}
}

func TestRelativePathsFollowTheConfigFile(t *testing.T) {
	ca := testcerts.NewCA(t, "rel")
	leaf := ca.Leaf("site", "site.example")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o755); err != nil {
		t.Fatal(err)
	}
	leaf.WriteTo(t, filepath.Join(dir, "tls", "site.crt"), filepath.Join(dir, "tls", "site.key"))
	writeTestFile(t, filepath.Join(dir, "ferry.hcl"), `
listener "a" {
  address = ":8443"
  tls {
    certificate {
      cert_file = "tls/site.crt"
      key_file  = "tls/site.key"
    }
  }
}`)
	cfg := load(t, filepath.Join(dir, "ferry.hcl"))
	if got := cfg.Listeners[0].TLS.Certificates[0].CertFile; got != filepath.Join(dir, "tls", "site.crt") {
		t.Errorf("CertFile: got %q, want it resolved against the config file's directory", got)
	}
}

func TestServiceProtocolAndTLS(t *testing.T) {
	f := newTLSFiles(t)
	cfg := parse(t, f.sub(`
service "payments" {
  protocol = "grpc"
  tls {
    ca_file     = "%CA%"
    server_name = "payments.internal"
    cert_file   = "%SHOP_CRT%"
    key_file    = "%SHOP_KEY%"
  }
}
service "plain" {}
route "r" {
  path_prefix = "/"
  service     = "payments"
}
route "p" {
  path_prefix = "/p"
  service     = "plain"
}`))
	got := cfg.Services["payments"]
	want := &UpstreamTLS{CAFile: f.ca.File, ServerName: "payments.internal", CertFile: f.shop.CertFile, KeyFile: f.shop.KeyFile}
	if got.UpstreamProtocol() != ProtocolGRPC || !reflect.DeepEqual(got.TLS, want) {
		t.Errorf("got %q %+v, want grpc %+v", got.Protocol, got.TLS, want)
	}
	if p := cfg.Services["plain"]; p.UpstreamProtocol() != ProtocolHTTP1 || p.TLS != nil {
		t.Errorf("plain: got %q %+v, want http1 without TLS", p.UpstreamProtocol(), p.TLS)
	}
}

func TestConsulTLSAndTokenFile(t *testing.T) {
	f := newTLSFiles(t)
	cfg := parse(t, f.sub(`
consul {
  address    = "https://127.0.0.1:8501"
  token_file = "%TOKEN%"
  tls {
    ca_file     = "%CA%"
    cert_file   = "%SHOP_CRT%"
    key_file    = "%SHOP_KEY%"
    server_name = "consul.internal"
  }
}`))
	want := ConsulTLS{Enabled: true, CAFile: f.ca.File, CertFile: f.shop.CertFile, KeyFile: f.shop.KeyFile, ServerName: "consul.internal"}
	if cfg.Consul.TLS != want || cfg.Consul.TokenFile != f.token || cfg.Consul.Address != "https://127.0.0.1:8501" {
		t.Errorf("got %+v, want %+v with the token file", cfg.Consul, want)
	}
}

func TestTLSErrors(t *testing.T) {
	f := newTLSFiles(t)
	for _, tc := range []errorCase{
		{name: "missing cert file", src: `
listener "a" {
  address = ":8443"
  tls {
    certificate {
      cert_file = "%MISSING%"
      key_file  = "%SHOP_KEY%"
    }
  }
}`, want: []string{"t.hcl:6,19: Invalid cert_file"}, detail: "no such file or directory"},
		{name: "garbage cert", src: `
listener "a" {
  address = ":8443"
  tls {
    certificate {
      cert_file = "%GARBAGE%"
      key_file  = "%SHOP_KEY%"
    }
  }
}`, want: []string{"t.hcl:6,19: Invalid cert_file"}, detail: "holds no PEM certificate"},
		{name: "key of another certificate", src: `
listener "a" {
  address = ":8443"
  tls {
    certificate {
      cert_file = "%SHOP_CRT%"
      key_file  = "%OTHER_KEY%"
    }
  }
}`, want: []string{"t.hcl:7,19: Invalid key_file"}, detail: "does not go with the certificate"},
		{name: "no certificate, bad version, bad CA", src: `
listener "a" {
  address = ":8443"
  tls {
    min_version    = "1.1"
    client_ca_file = "%GARBAGE%"
  }
}`, want: []string{"t.hcl:4,3: Missing certificate", "t.hcl:5,22: Invalid min_version", "t.hcl:6,22: Invalid client_ca_file"}},
		{name: "key without cert", src: `
listener "a" {
  address = ":8443"
  tls {
    certificate {
      key_file = "%SHOP_KEY%"
    }
  }
}`, want: []string{"t.hcl:5,5: Missing cert_file"}},
		{name: "listener without address, duplicate name and address", src: `
listen = "127.0.0.1:8080"
listener "a" {}
listener "b" {
  address = "127.0.0.1:8080"
}
listener "b" {
  address = "127.0.0.1:8082"
}`, want: []string{"t.hcl:3,1: Missing address", "t.hcl:5,13: Duplicate listener address", "t.hcl:7,10: Duplicate listener \"b\""}},
		{name: "redirect on TLS and bad redirect", src: `
listener "a" {
  address        = ":8443"
  redirect_https = "https://{host}:8443"
  tls {
    certificate {
      cert_file = "%SHOP_CRT%"
      key_file  = "%SHOP_KEY%"
    }
  }
}
listener "b" {
  address        = ":8080"
  redirect_https = "http://{host}/x"
}`, want: []string{"t.hcl:4,3: redirect_https on a TLS listener", "t.hcl:14,20: Invalid redirect_https"}},
		{name: "service protocol and tls", src: `
service "s" {
  protocol = "http3"
  tls {
    ca_file   = "%MISSING%"
    cert_file = "%SHOP_CRT%"
  }
}
route "r" {
  path_prefix = "/"
  service     = "s"
}`, want: []string{"t.hcl:3,14: Unknown protocol", "t.hcl:4,3: Missing key_file", "t.hcl:5,17: Invalid ca_file"}},
		{name: "consul token and token_file, http with tls", src: `
consul {
  address    = "http://127.0.0.1:8501"
  token      = "abc"
  token_file = "%MISSING%"
  tls {}
}`, want: []string{"t.hcl:3,16: Consul tls block with an http:// address", "t.hcl:5,16: Invalid token_file"}},
		{name: "consul token conflict, bad scheme", src: `
consul {
  address    = "ftp://127.0.0.1:8501"
  token      = "abc"
  token_file = "%TOKEN%"
}`, want: []string{"t.hcl:3,16: Invalid Consul address", "t.hcl:5,3: Conflicting Consul token settings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.src = f.sub(tc.src)
			checkErrors(t, tc)
		})
	}
}

func TestEmptyTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeTestFile(t, path, "\n")
	checkErrors(t, errorCase{src: `consul {
  token_file = "` + path + `"
}`, want: []string{"t.hcl:2,16: Invalid token_file"}, detail: "is empty"})
}

func TestRedirectURL(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"https://{host}", true}, {"https://{host}:8443", true}, {"https://shop.example", true}, {"", true},
		{"http://{host}", false}, {"https://{host}/path", false}, {"https://{port}", false},
		{"https://", false}, {"https://a b", false}, {"https://{host}?q", false},
	} {
		if _, err := redirectURL(tc.in); (err == nil) != tc.ok {
			t.Errorf("redirectURL(%q): got error %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

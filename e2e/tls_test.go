package e2e

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// tlsEdge is ferry with three listener blocks in front of the service
// "web": "public" (TLS with two certificates, h2 offered), "inside" (plain,
// h2c prior knowledge) and "redirect" (redirect_https).
type tlsEdge struct {
	f                        *ferry
	ca                       *testcerts.CA
	public, inside, redirect string // addresses
	shopCert                 string // the live certificate file of shop.example
	shopKey                  string
}

func startTLSEdge(t *testing.T) *tlsEdge {
	t.Helper()
	agent := consultest.Start(t)
	register(t, agent.Client(), "web", startBackend(t, "web-1", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Seen-Proto", r.Proto)
		w.Header().Set("X-Seen-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"))
		io.WriteString(w, "web-1")
	}))

	e := &tlsEdge{ca: testcerts.NewCA(t, "edge")}
	dir := t.TempDir()
	e.shopCert, e.shopKey = filepath.Join(dir, "shop.crt"), filepath.Join(dir, "shop.key")
	e.ca.Leaf("shop", "shop.example").WriteTo(t, e.shopCert, e.shopKey)
	apps := e.ca.Leaf("apps", "*.apps.example")
	ports := consultest.FreePorts(t, 3)
	e.public = "127.0.0.1:" + strconv.Itoa(ports[0])
	e.inside = "127.0.0.1:" + strconv.Itoa(ports[1])
	e.redirect = "127.0.0.1:" + strconv.Itoa(ports[2])
	e.f = startFerry(t, agent.HTTPAddr, `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
listener "public" {
  address = "`+e.public+`"
  http2   = true
  tls {
    certificate {
      cert_file = "`+e.shopCert+`"
      key_file  = "`+e.shopKey+`"
    }
    certificate {
      cert_file = "`+apps.CertFile+`"
      key_file  = "`+apps.KeyFile+`"
    }
  }
}
listener "inside" {
  address = "`+e.inside+`"
  http2   = true
}
listener "redirect" {
  address        = "`+e.redirect+`"
  redirect_https = "https://{host}:8443"
}
route "web" {
  path_prefix    = "/"
  service        = "web"
  max_body_bytes = 16
}
`)
	e.f.WaitReady()
	return e
}

func (e *tlsEdge) client(t *testing.T, serverName string, h2 bool) *http.Client {
	var p http.Protocols
	if h2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool, ServerName: serverName}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTLSEdge(t *testing.T) {
	e := startTLSEdge(t)
	h1, h2 := e.client(t, "shop.example", false), e.client(t, "shop.example", true)

	for _, tc := range []struct {
		name  string
		c     *http.Client
		proto string
	}{{"HTTP/1.1 over TLS", h1, "HTTP/1.1"}, {"HTTP/2 over TLS", h2, "HTTP/2.0"}} {
		req, _ := http.NewRequest("GET", "https://"+e.public+"/hello?x=1", nil)
		resp, body := do(t, tc.c, req)
		if resp.StatusCode != 200 || body != "web-1" || resp.Proto != tc.proto || resp.TLS == nil {
			t.Errorf("%s: got %d %q %s, want 200 \"web-1\" %s", tc.name, resp.StatusCode, body, resp.Proto, tc.proto)
		}
		if got := resp.Header.Get("X-Seen-Forwarded-Proto"); got != "https" {
			t.Errorf("%s: the upstream saw X-Forwarded-Proto %q, want https", tc.name, got)
		}
	}
	// A chunked upload over TLS is handed to the net/http lane, which
	// still knows the connection is TLS. (Checked after the handoff count
	// below, which it raises.)
	defer func() {
		req, _ := http.NewRequest("POST", "https://"+e.public+"/upload", io.MultiReader(strings.NewReader("chunked")))
		resp, body := do(t, h1, req)
		if resp.StatusCode != 200 || body != "web-1" || resp.Header.Get("X-Seen-Forwarded-Proto") != "https" {
			t.Errorf("chunked upload over TLS: %d %q, X-Forwarded-Proto %q, want https", resp.StatusCode, body, resp.Header.Get("X-Seen-Forwarded-Proto"))
		}
	}()
	// HTTP/1.1 over TLS is served by the fast lane: it handed no
	// connection to the net/http lane. The h2 request shows as HTTP/2.0 in
	// the access log (the net/http front-end).
	if n, _ := value(scrape(t, e.f.AdminURL), "ferry_proxy_handoffs_total"); n != 0 {
		t.Errorf("ferry_proxy_handoffs_total: got %v after HTTP/1.1 over TLS, want 0 (served by the fast lane)", n)
	}
	waitFor(t, 5*time.Second, "the h2 request in the access log", func() bool { return strings.Contains(e.f.AccessLog(), "HTTP/2.0") })

	// SNI: each name gets its certificate; an unknown one the first.
	for _, tc := range []struct{ sni, want string }{{"shop.example", "shop"}, {"api.apps.example", "apps"}, {"unknown.example", "shop"}} {
		c, err := tls.Dial("tcp", e.public, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("SNI %s: %v", tc.sni, err)
		}
		if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != tc.want {
			t.Errorf("SNI %s: got certificate %q, want %q", tc.sni, got, tc.want)
		}
		c.Close()
	}

	// h2c with prior knowledge on the plain listener, HTTP/1.1 beside it.
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p}}
	defer h2c.CloseIdleConnections()
	for _, c := range []*http.Client{h2c, client} {
		req, _ := http.NewRequest("GET", "http://"+e.inside+"/x", nil)
		resp, body := do(t, c, req)
		if resp.StatusCode != 200 || body != "web-1" {
			t.Errorf("inside listener, %s: got %d %q", resp.Proto, resp.StatusCode, body)
		}
	}

	// redirect_https: 308, host without its port, path and query kept.
	req, _ := http.NewRequest("GET", "http://"+e.redirect+"/cart/1?item=2", nil)
	req.Host = "shop.example:80"
	resp, _ := do(t, h1, req)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || loc != "https://shop.example:8443/cart/1?item=2" {
		t.Errorf("redirect: got %d %q", resp.StatusCode, loc)
	}
}

// TestTLSEdgeH2RefusedLikeH1 sends what the HTTP/1.1 edge refuses over
// HTTP/2 too: the same core gives the same answer.
func TestTLSEdgeH2RefusedLikeH1(t *testing.T) {
	e := startTLSEdge(t)
	h1, h2 := e.client(t, "shop.example", false), e.client(t, "shop.example", true)
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"body over max_body_bytes", "POST", "/upload", strings.Repeat("x", 100), 413},
		{"encoded NUL in the path", "GET", "/a/%00", "", 400},
		{"encoded dot-dot-semicolon", "GET", "/a/%2e%2e;x/b", "", 400},
		{"a path that stays", "GET", "/a/b", "", 200},
	} {
		for _, c := range []*http.Client{h1, h2} {
			req, _ := http.NewRequest(tc.method, "https://"+e.public+tc.path, strings.NewReader(tc.body))
			if tc.body == "" {
				req.Body = nil
			}
			resp, _ := do(t, c, req)
			if resp.StatusCode != tc.want {
				t.Errorf("%s over %s: got %d, want %d", tc.name, resp.Proto, resp.StatusCode, tc.want)
			}
		}
	}
}

// TestTLSEdgeCertificateRotation replaces the certificate files under an
// open keep-alive connection: new handshakes get the new certificate, the
// open connection goes on serving with its own.
func TestTLSEdgeCertificateRotation(t *testing.T) {
	e := startTLSEdge(t)
	open, err := tls.Dial("tcp", e.public, &tls.Config{RootCAs: e.ca.Pool, ServerName: "shop.example", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	r := bufio.NewReader(open)
	ask := func() int {
		t.Helper()
		if _, err := io.WriteString(open, "GET /k HTTP/1.1\r\nHost: shop.example\r\n\r\n"); err != nil {
			t.Fatalf("open connection: %v", err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("open connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ask(); code != 200 {
		t.Fatalf("before rotation: %d", code)
	}
	oldSerial := open.ConnectionState().PeerCertificates[0].SerialNumber

	renewed := e.ca.Leaf("shop-renewed", "shop.example")
	renewed.WriteTo(t, e.shopCert, e.shopKey)
	waitFor(t, 20*time.Second, "the renewed certificate on new connections", func() bool {
		c, err := tls.Dial("tcp", e.public, &tls.Config{RootCAs: e.ca.Pool, ServerName: "shop.example"})
		if err != nil {
			return false
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName == "shop-renewed"
	})
	if code := ask(); code != 200 {
		t.Errorf("the connection open across the rotation: got %d, want 200", code)
	}
	if open.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(oldSerial) != 0 {
		t.Error("the open connection's certificate changed")
	}
	if !strings.Contains(e.f.Logs(), "certificates reloaded") {
		t.Error("ferry's log does not say the certificates were reloaded")
	}
}

// TestTLSEdgeCurl drives the TLS listener with curl, --http1.1 and --http2.
func TestTLSEdgeCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed (.ci/run installs it)")
	}
	e := startTLSEdge(t)
	_, port, _ := net.SplitHostPort(e.public)
	for _, tc := range []struct{ flag, want string }{{"--http1.1", "HTTP/1.1 200"}, {"--http2", "HTTP/2 200"}} {
		out, err := exec.Command(curl, "-sS", "-i", tc.flag, "--cacert", e.ca.File,
			"--resolve", "shop.example:"+port+":127.0.0.1", "https://shop.example:"+port+"/c").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), tc.want) || !strings.HasSuffix(string(out), "web-1") {
			t.Errorf("curl %s: %v\n%s", tc.flag, err, out)
		}
	}
}

// TestTLSConsulWithACLToken runs ferry against a Consul agent reached over
// HTTPS (client certificates verified) with ACLs in default-deny mode: a
// token file with a read-only token routes; no token is named in the log
// as the cause of the empty answers.
func TestTLSConsulWithACLToken(t *testing.T) {
	for _, v := range []string{"CONSUL_HTTP_TOKEN", "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_ADDR", "CONSUL_CACERT"} {
		t.Setenv(v, "")
	}
	ca := testcerts.NewCA(t, "consul")
	server := ca.Leaf("consul-server", "server.dc1.consul", "127.0.0.1")
	client := ca.Leaf("ferry", "ferry")
	const management = "0e3f7c1d-2b4a-4c5d-9e8f-000000000001"
	agent := consultest.StartWith(t, consultest.Options{
		TLS:      &consultest.TLS{CAFile: ca.File, CertFile: server.CertFile, KeyFile: server.KeyFile, VerifyIncoming: true},
		ACLToken: management,
	})
	mgmt := agent.Client()
	register(t, mgmt, "web", startBackend(t, "web-1", nil))
	pol, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: "ferry-read",
		Rules: "service_prefix \"\" { policy = \"read\" }\nnode_prefix \"\" { policy = \"read\" }"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "consul-token")
	writeFile(t, tokenFile, tok.SecretID+"\n")

	consulBlock := func(token string) string {
		return `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "https://%CONSUL%"
  ` + token + `
  tls {
    ca_file   = "` + ca.File + `"
    cert_file = "` + client.CertFile + `"
    key_file  = "` + client.KeyFile + `"
  }
}
route "web" {
  path_prefix = "/"
  service     = "web"
}
`
	}
	f := startFerry(t, agent.HTTPSAddr, consulBlock(`token_file = "`+tokenFile+`"`))
	f.WaitReady()
	if code, body := get(t, f.URL+"/x"); code != 200 || body != "web-1" {
		t.Errorf("through Consul over TLS with a token file: got %d %q", code, body)
	}

	anon := startFerry(t, agent.HTTPSAddr, consulBlock(""))
	waitFor(t, 10*time.Second, "the missing token named in the log", func() bool {
		return strings.Contains(anon.Logs(), "no ACL token is configured")
	})
	if code, _ := get(t, anon.URL+"/x"); code != 503 {
		t.Errorf("without a token: got %d, want 503 (Consul hides the instances)", code)
	}
}

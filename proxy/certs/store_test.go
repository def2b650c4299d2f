package certs

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// echoServer serves TLS with store on loopback: each connection echoes
// lines until it closes. It stops when the test ends.
func echoServer(t *testing.T, s *Store) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, s.TLSConfig())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		tl.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial handshakes with addr as serverName and returns the connection.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
		// A TLS 1.3 server verifies the client's certificate after the
		// client's handshake is done: a refusal shows at the first read.
		_, err = c.Write([]byte("ping\n"))
		if err == nil {
			var line string
			line, err = bufio.NewReader(c).ReadString('\n')
			if err == nil && line != "ping\n" {
				t.Fatalf("echo: got %q", line)
			}
		}
	}
	return c, err
}

func clientConfig(ca *testcerts.CA, serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, ServerName: serverName}
}

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	opts.Logger = hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testWriter{t}})
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func servedName(c *tls.Conn) string {
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestSNIChoice(t *testing.T) {
	ca := testcerts.NewCA(t, "sni")
	def := ca.Leaf("default", "default.example")
	shop := ca.Leaf("shop", "shop.example", "www.shop.example")
	wild := ca.Leaf("wild", "*.apps.example")
	exact := ca.Leaf("exact", "admin.apps.example")
	s := newStore(t, Options{Certificates: []Pair{
		{def.CertFile, def.KeyFile}, {shop.CertFile, shop.KeyFile}, {wild.CertFile, wild.KeyFile}, {exact.CertFile, exact.KeyFile},
	}})
	addr := echoServer(t, s)
	for _, tc := range []struct{ sni, want string }{
		{"shop.example", "shop"},
		{"WWW.Shop.Example", "shop"},
		{"a.apps.example", "wild"},
		{"admin.apps.example", "exact"}, // exact beats wildcard
		{"x.y.apps.example", "default"}, // a wildcard covers one label
		{"apps.example", "default"},
		{"unknown.example", "default"},
	} {
		cfg := clientConfig(ca, tc.sni)
		cfg.InsecureSkipVerify = true // the default certificate does not name every host asked for
		c, err := dial(t, addr, cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		if got := servedName(c); got != tc.want {
			t.Errorf("SNI %q: got certificate %q, want %q", tc.sni, got, tc.want)
		}
	}
	// Without SNI (a client connecting by IP address): the first one.
	c, err := dial(t, addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := servedName(c); got != "default" {
		t.Errorf("no SNI: got %q, want default", got)
	}
	// The chain is served whole: the client verifies against the CA.
	if _, err := dial(t, addr, clientConfig(ca, "shop.example")); err != nil {
		t.Errorf("verified handshake: %v", err)
	}
}

// live copies leaf's files to paths of its own, which the test rewrites.
func live(t *testing.T, leaf *testcerts.Leaf) Pair {
	dir := t.TempDir()
	p := Pair{filepath.Join(dir, "live.crt"), filepath.Join(dir, "live.key")}
	leaf.WriteTo(t, p.CertFile, p.KeyFile)
	return p
}

func TestReloadOnFileChangeKeepsOpenConnections(t *testing.T) {
	ca := testcerts.NewCA(t, "rot")
	oldLeaf, newLeaf := ca.Leaf("old", "shop.example"), ca.Leaf("new", "shop.example")
	p := live(t, oldLeaf)
	s := newStore(t, Options{Certificates: []Pair{p}, Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	addr := echoServer(t, s)

	open, err := dial(t, addr, clientConfig(ca, "shop.example"))
	if err != nil {
		t.Fatal(err)
	}
	newLeaf.WriteTo(t, p.CertFile, p.KeyFile)
	waitFor(t, "the new certificate", func() bool {
		c, err := dial(t, addr, clientConfig(ca, "shop.example"))
		return err == nil && servedName(c) == "new"
	})
	// The connection made before the change still works, on its certificate.
	r := bufio.NewReader(open)
	if _, err := open.Write([]byte("still here\n")); err != nil {
		t.Fatalf("open connection: %v", err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "still here\n" {
		t.Fatalf("open connection: got %q, %v", line, err)
	}
	if got := servedName(open); got != "old" {
		t.Errorf("open connection: certificate %q, want old", got)
	}
	if st := s.Stats(); st.Reloads != 1 || st.Failures != 0 {
		t.Errorf("stats: got %+v, want 1 reload, 0 failures", st)
	}
}

func TestBrokenFileKeepsOldCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "broken")
	leaf := ca.Leaf("good", "shop.example")
	p := live(t, leaf)
	s := newStore(t, Options{Certificates: []Pair{p}})
	addr := echoServer(t, s)

	for _, breakIt := range []func(){
		func() { os.WriteFile(p.CertFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600) },
		func() { os.Remove(p.KeyFile) },
		func() { ca.Leaf("other", "other.example").WriteTo(t, p.CertFile, p.CertFile+".unusedkey") }, // a chain without its key
	} {
		breakIt()
		err := s.Reload()
		if err == nil {
			t.Fatal("Reload of a broken file: got no error")
		}
		c, err := dial(t, addr, clientConfig(ca, "shop.example"))
		if err != nil || servedName(c) != "good" {
			t.Fatalf("after a broken reload: got %v, want the good certificate still served", err)
		}
		leaf.WriteTo(t, p.CertFile, p.KeyFile) // repaired for the next case
	}
	st := s.Stats()
	if st.Failures != 3 || st.LastError == "" {
		t.Errorf("stats: got %+v, want 3 failures with the last error", st)
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload after repair: %v", err)
	}
	if st := s.Stats(); st.LastError != "" || len(st.Certificates) != 1 || st.Certificates[0].Names[0] != "shop.example" {
		t.Errorf("stats after repair: got %+v", st)
	}
}

func TestBrokenFileLoggedOnceWhilePolling(t *testing.T) {
	ca := testcerts.NewCA(t, "poll")
	p := live(t, ca.Leaf("good", "shop.example"))
	s := newStore(t, Options{Certificates: []Pair{p}})
	os.WriteFile(p.CertFile, []byte("garbage"), 0o600)
	for range 5 {
		s.mu.Lock()
		s.reloadLocked(false)
		s.mu.Unlock()
	}
	if st := s.Stats(); st.Failures != 1 {
		t.Errorf("failures: got %d, want 1 for one broken change polled 5 times", st.Failures)
	}
}

func TestClientCertificates(t *testing.T) {
	ca := testcerts.NewCA(t, "clients")
	stranger := testcerts.NewCA(t, "stranger")
	server := ca.Leaf("server", "shop.example")
	s := newStore(t, Options{Certificates: []Pair{{server.CertFile, server.KeyFile}}, ClientCAFile: ca.File})
	addr := echoServer(t, s)

	if _, err := dial(t, addr, clientConfig(ca, "shop.example")); err == nil {
		t.Error("without a client certificate: got a connection, want a refusal")
	}
	bad := clientConfig(ca, "shop.example")
	bad.Certificates = []tls.Certificate{stranger.Leaf("mallory", "mallory").TLS}
	if _, err := dial(t, addr, bad); err == nil {
		t.Error("with a certificate of another CA: got a connection, want a refusal")
	}
	good := clientConfig(ca, "shop.example")
	good.Certificates = []tls.Certificate{ca.Leaf("alice", "alice").TLS}
	if _, err := dial(t, addr, good); err != nil {
		t.Errorf("with a certificate of the client CA: %v", err)
	}
}

func TestMinVersion13RefusesTLS12(t *testing.T) {
	ca := testcerts.NewCA(t, "v13")
	leaf := ca.Leaf("s", "shop.example")
	s := newStore(t, Options{Certificates: []Pair{{leaf.CertFile, leaf.KeyFile}}, MinVersion: tls.VersionTLS13})
	addr := echoServer(t, s)
	old := clientConfig(ca, "shop.example")
	old.MaxVersion = tls.VersionTLS12
	if _, err := dial(t, addr, old); err == nil {
		t.Error("TLS 1.2 client: got a connection, want a refusal")
	}
	c, err := dial(t, addr, clientConfig(ca, "shop.example"))
	if err != nil || c.ConnectionState().Version != tls.VersionTLS13 {
		t.Errorf("TLS 1.3 client: %v", err)
	}

	// The default minimum is 1.2: a 1.2 client is served, a 1.1 one not.
	s12 := newStore(t, Options{Certificates: []Pair{{leaf.CertFile, leaf.KeyFile}}})
	addr12 := echoServer(t, s12)
	if _, err := dial(t, addr12, old); err != nil {
		t.Errorf("TLS 1.2 client with the default minimum: %v", err)
	}
	older := clientConfig(ca, "shop.example")
	older.MinVersion, older.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	if _, err := dial(t, addr12, older); err == nil {
		t.Error("TLS 1.1 client: got a connection, want a refusal")
	}
}

func TestALPN(t *testing.T) {
	ca := testcerts.NewCA(t, "alpn")
	leaf := ca.Leaf("s", "shop.example")
	for _, tc := range []struct {
		http2 bool
		want  string
	}{{true, "h2"}, {false, "http/1.1"}} {
		s := newStore(t, Options{Certificates: []Pair{{leaf.CertFile, leaf.KeyFile}}, HTTP2: tc.http2})
		cfg := clientConfig(ca, "shop.example")
		cfg.NextProtos = []string{"h2", "http/1.1"}
		c, err := dial(t, echoServer(t, s), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != tc.want {
			t.Errorf("http2=%v: negotiated %q, want %q", tc.http2, got, tc.want)
		}
	}
}

func TestNewReportsTheBrokenFile(t *testing.T) {
	ca := testcerts.NewCA(t, "new")
	leaf := ca.Leaf("s", "shop.example")
	_, err := New(Options{Certificates: []Pair{{leaf.CertFile, "/nonexistent/key.pem"}}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/key.pem") {
		t.Errorf("got %v, want an error naming the key file", err)
	}
	if _, err := New(Options{}); err == nil {
		t.Error("no certificate: got no error")
	}
	// The served chain verifies with the CA's pool, the names are reported.
	s, err := New(Options{Certificates: []Pair{{leaf.CertFile, leaf.KeyFile}}})
	if err != nil {
		t.Fatal(err)
	}
	info := s.Stats().Certificates[0]
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: "shop.example"}); err != nil || info.NotAfter.IsZero() {
		t.Errorf("got %+v, %v", info, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

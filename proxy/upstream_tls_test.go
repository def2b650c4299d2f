package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/testcerts"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// tlsBackend starts an HTTPS backend with a certificate for 127.0.0.1 and
// "backend.test" signed by ca, counting the connections it accepts; with
// clientCA it requires client certificates signed by that CA.
func tlsBackend(t *testing.T, ca *testcerts.CA, clientCA *testcerts.CA, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	leaf := ca.Leaf("backend", "127.0.0.1", "backend.test")
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	if clientCA != nil {
		s.TLS.ClientAuth, s.TLS.ClientCAs = tls.RequireAndVerifyClientCert, clientCA.Pool
	}
	conns := new(atomic.Int64)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s, conns
}

func TestUpstreamTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "upstream")
	b, conns := tlsBackend(t, ca, nil, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls "+r.TLS.ServerName+" "+r.Host)
	})
	f := newFixture(t, "text")
	// A session cache, as cmd/ferry's configurations have: Go's server
	// then sends TLS 1.3 session tickets after the handshake.
	spec := route.ServiceSpec{TLS: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(8)}}
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"s": spec}, setOf(t, "s", addr(b)))

	for i := range 3 {
		resp, body := f.get("/x")
		// Verification defaults to the instance's address (an IP: no
		// SNI is sent, RFC 6066 §3); the Host is the client's.
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "tls  127.0.0.1:") {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// The session tickets do not make a pooled connection look busy: it
	// is reused.
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d upstream connections for 3 sequential requests, want 1", n)
	}
}

func TestUpstreamTLSServerNameAndMTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "upstream")
	clients := testcerts.NewCA(t, "clients")
	b, _ := tlsBackend(t, ca, clients, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.ServerName+" "+r.TLS.PeerCertificates[0].Subject.CommonName)
	})
	client := clients.Leaf("ferry-client", "ferry")
	f := newFixture(t, "text")
	spec := route.ServiceSpec{TLS: &tls.Config{RootCAs: ca.Pool, ServerName: "backend.test",
		Certificates: []tls.Certificate{client.TLS}}}
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"s": spec}, setOf(t, "s", addr(b)))
	resp, body := f.get("/")
	if resp.StatusCode != 200 || body != "backend.test ferry-client" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestUpstreamTLSRefusesUnverified(t *testing.T) {
	ca := testcerts.NewCA(t, "upstream")
	other := testcerts.NewCA(t, "other")
	clients := testcerts.NewCA(t, "clients")
	var reached atomic.Int64
	b, _ := tlsBackend(t, ca, clients, func(w http.ResponseWriter, r *http.Request) { reached.Add(1) })
	f := newFixture(t, "text")
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"unknown CA", &tls.Config{RootCAs: other.Pool}},
		{"wrong name", &tls.Config{RootCAs: ca.Pool, ServerName: "elsewhere.test"}},
		{"no client certificate", &tls.Config{RootCAs: ca.Pool}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
				map[string]route.ServiceSpec{"s": {TLS: tc.cfg}}, setOf(t, "s", addr(b)))
			if resp, _ := f.get("/"); resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("got %d, want 502", resp.StatusCode)
			}
		})
	}
	if reached.Load() != 0 {
		t.Fatal("a request reached an upstream ferry could not verify")
	}
}

// A TLS upstream that sends bytes nobody asked for after its response, in a
// TLS record of their own, has its connection closed, never read as the
// next answer: the record may sit in tls.Conn's buffer, where a peek at
// the socket cannot see it.
func TestUpstreamTLSUnsolicitedBytesCloseTheConnection(t *testing.T) {
	ca := testcerts.NewCA(t, "upstream")
	leaf := ca.Leaf("backend", "127.0.0.1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	stray := make(chan struct{}, 10)
	done := make(chan struct{})
	var handlers sync.WaitGroup
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := accepted.Add(1)
			handlers.Go(func() {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf) // one request head
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nc"+strconv.Itoa(int(n)))
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray") // a record of its own
				stray <- struct{}{}
				io.Copy(io.Discard, c)
			})
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done; handlers.Wait() })

	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"s": {TLS: &tls.Config{RootCAs: ca.Pool}}}, setOf(t, "s", ln.Addr().String()))
	for i, want := range []string{"c1", "c2", "c3"} {
		if resp, body := f.get("/"); resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d: %d %q, want %q", i, resp.StatusCode, body, want)
		}
		<-stray // sent (on loopback: arrived) before the next request
	}
}

// A service's connections live as long as its TLS configuration: a table
// rebuilt with the same configuration reuses them, a new configuration (a
// reload) never does.
func TestUpstreamTLSNewConfigurationNewConnections(t *testing.T) {
	ca := testcerts.NewCA(t, "upstream")
	other := testcerts.NewCA(t, "other")
	b, conns := tlsBackend(t, ca, nil, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	f := newFixture(t, "text")
	routes := []route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}
	good := &tls.Config{RootCAs: ca.Pool}
	f.route(routes, map[string]route.ServiceSpec{"s": {TLS: good}}, setOf(t, "s", addr(b)))
	f.get("/")
	f.route(routes, map[string]route.ServiceSpec{"s": {TLS: good}}, setOf(t, "s", addr(b))) // a discovery change
	if resp, _ := f.get("/"); resp.StatusCode != 200 || conns.Load() != 1 {
		t.Fatalf("same configuration: %d, %d connections", resp.StatusCode, conns.Load())
	}
	// A configuration that cannot verify the instance: the pooled
	// connection, made under the old one, is not used.
	f.route(routes, map[string]route.ServiceSpec{"s": {TLS: &tls.Config{RootCAs: other.Pool}}}, setOf(t, "s", addr(b)))
	if resp, _ := f.get("/"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("new configuration: %d", resp.StatusCode)
	}
}

// A request body streamed on a new TLS 1.3 connection is not mistaken for
// an early answer when the server's session tickets arrive meanwhile. A Go
// server that asks for a client certificate sends its tickets only after
// the client's Finished, as OpenSSL does: they reach ferry after its
// handshake returned, while the body streams.
func TestUpstreamTLSStreamsBodiesPastSessionTickets(t *testing.T) {
	ca := testcerts.NewCA(t, "upstream")
	clients := testcerts.NewCA(t, "clients")
	b, conns := tlsBackend(t, ca, clients, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	f := newFixture(t, "text")
	cfg := &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{clients.Leaf("ferry", "ferry").TLS},
		ClientSessionCache: tls.NewLRUClientSessionCache(8)} // as cmd/ferry builds it: servers send tickets
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}},
		map[string]route.ServiceSpec{"s": {TLS: cfg, ResponseTimeout: 5 * time.Second}}, setOf(t, "s", addr(b)))
	const size = 2 << 20
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/", strings.NewReader(strings.Repeat("z", size)))
		if resp, body := f.do(req); resp.StatusCode != 200 || body != strconv.Itoa(size) {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections: the tickets made a quiet connection look busy", conns.Load())
	}
}

package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// blockedFor is how long a connection over the cap is watched for an
// answer that must not come: it waits in the kernel's backlog.
const blockedFor = 600 * time.Millisecond

// TestMaxConnectionsCountsEveryProtocol: max_connections caps each
// listener's open client connections whatever they speak — HTTP/2 and
// HTTP/1.1 over TLS, h2c, a redirect_https listener — with the connection
// over the cap left waiting in the backlog (not refused) and served as soon
// as one closes. A connection whose TLS handshake fails gives its slot back.
func TestMaxConnectionsCountsEveryProtocol(t *testing.T) {
	agent := consultest.Start(t)
	backendFor(t, agent.Client(), "user", "user-1")
	ca := testcerts.NewCA(t, "slots")
	leaf := ca.Leaf("shop", "shop.example")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := strings.Replace(tlsConfigText(leaf), "consul {", "limits {\n  max_connections = 2\n}\nconsul {", 1)
	p, ports := startWithConfig(t, agent.HTTPAddr, cfg)
	defer p.stop(t)
	tlsAddr, h2cAddr, redirectAddr := ports[0], ports[1], ports[2]
	p.waitFor(t, "the route over TLS", func() bool {
		c := h1Client(ca)
		defer c.CloseIdleConnections()
		code, body, _ := fetch(c, "https://"+tlsAddr+"/users/1")
		return code == 200 && body == "user-1"
	})
	time.Sleep(100 * time.Millisecond) // the probe's connection is closed and its slot back

	// Per listener: two connections fill it, a third waits in the backlog
	// (and is not counted), and is served once the first of the two closes.
	type open struct {
		c          *http.Client
		url, proto string
	}
	tlsURL, h2cURL, redirectURL := "https://"+tlsAddr+"/users/1", "http://"+h2cAddr+"/users/1", "http://"+redirectAddr+"/x"
	for _, tc := range []struct {
		name, listener string
		closed, kept   open
		third          func() attempt
		served         string
	}{
		{"h2 over TLS", "public", open{h2Client(ca), tlsURL, "HTTP/2.0"}, open{h2Client(ca), tlsURL, "HTTP/2.0"},
			func() attempt { return startTLS(ca, tlsAddr, "h2") }, "h2"},
		{"HTTP/1.1 and h2 over TLS together", "public", open{h2Client(ca), tlsURL, "HTTP/2.0"}, open{h1Client(ca), tlsURL, "HTTP/1.1"},
			func() attempt { return startTLS(ca, tlsAddr, "http/1.1") }, "http/1.1"},
		{"h2c", "inside", open{h2cClient(), h2cURL, "HTTP/2.0"}, open{h2cClient(), h2cURL, "HTTP/2.0"},
			func() attempt { return startPlain(h2cAddr, "/users/1") }, "HTTP/1.1 200"},
		{"redirect_https", "redirect", open{h1Client(ca), redirectURL, "HTTP/1.1"}, open{h1Client(ca), redirectURL, "HTTP/1.1"},
			func() attempt { return startPlain(redirectAddr, "/x") }, "HTTP/1.1 308"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed, kept := held(t, tc.closed.c, tc.closed.url, tc.closed.proto), held(t, tc.kept.c, tc.kept.url, tc.kept.proto)
			defer kept.CloseIdleConnections()
			third := tc.third()
			expectWaiting(t, third)
			if got := listenerConnections(t, p, tc.listener); got != "2" {
				t.Errorf("ferry_listener_connections{listener=%q} = %s with two connections open, want 2", tc.listener, got)
			}
			closed.CloseIdleConnections()
			expectServed(t, third, tc.served)
		})
	}
	t.Run("failed handshakes give their slots back", func(t *testing.T) {
		for range 3 { // more than the cap: each must have freed its slot
			c, err := net.Dial("tcp", tlsAddr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) // not a ClientHello
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, c) // an alert, then ferry closes
			c.Close()
		}
		c := h2Client(ca)
		if code, _, proto := fetch(c, "https://"+tlsAddr+"/users/1"); code != 200 || proto != "HTTP/2.0" {
			t.Errorf("after 3 failed handshakes with max_connections 2: got %d %s, want 200 over h2", code, proto)
		}
		c.CloseIdleConnections()
	})
	// Every connection above is closed: each listener's gauge is back to 0.
	for _, name := range []string{"public", "inside", "redirect"} {
		p.waitFor(t, name+"'s connections back to 0", func() bool { return listenerConnections(t, p, name) == "0" })
	}
}

// listenerConnections scrapes ferry_listener_connections of a listener.
func listenerConnections(t *testing.T, p *inProcess, listener string) string {
	t.Helper()
	code, body := p.get("http://" + p.admin + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	prefix := `ferry_listener_connections{listener="` + listener + `"} `
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return "absent"
}

// held makes one request with a client of its own and leaves its
// connection open (idle in the client's pool); the caller closes it with
// CloseIdleConnections.
func held(t *testing.T, c *http.Client, url, proto string) *http.Client {
	t.Helper()
	if code, body, got := fetch(c, url); code >= 400 || got != proto {
		t.Fatalf("%s: got %d %q %s, want an answer over %s", url, code, body, got, proto)
	}
	return c
}

// attempt is a connection over the cap: done receives what came of it.
type attempt struct{ done chan string }

// startTLS begins a TLS handshake offering ALPN proto; it reports the
// negotiated protocol, or the error.
func startTLS(ca *testcerts.CA, addr, proto string) attempt {
	a := attempt{done: make(chan string, 1)}
	go func() {
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "shop.example", NextProtos: []string{proto}})
		if err != nil {
			a.done <- "error: " + err.Error()
			return
		}
		a.done <- c.ConnectionState().NegotiatedProtocol
		c.Close()
	}()
	return a
}

// startPlain sends an HTTP/1.1 GET of path on a new connection; it reports
// the status line, or the error.
func startPlain(addr, path string) attempt {
	a := attempt{done: make(chan string, 1)}
	go func() {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			a.done <- "error: " + err.Error()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: shop.example\r\n\r\n"))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			a.done <- "error: " + err.Error()
			return
		}
		a.done <- strings.TrimSpace(line)
	}()
	return a
}

func expectWaiting(t *testing.T, a attempt) {
	t.Helper()
	select {
	case got := <-a.done:
		t.Fatalf("a connection over max_connections was served at once: %s", got)
	case <-time.After(blockedFor):
	}
}

func expectServed(t *testing.T, a attempt, wantPrefix string) {
	t.Helper()
	select {
	case got := <-a.done:
		if !strings.HasPrefix(got, wantPrefix) {
			t.Errorf("the waiting connection, once a slot was free: got %q, want %q", got, wantPrefix)
		}
	case <-time.After(5 * time.Second):
		t.Error("the waiting connection was not served after a connection closed")
	}
}

// TestSlotConn: a slot is given back once however often its connection is
// closed; a plain TCP connection keeps its half-close and its descriptor.
func TestSlotConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	slots := newConnSlots(2)
	stop := make(chan struct{})
	if !slots.take(stop) || !slots.take(stop) {
		t.Fatal("take on free slots")
	}
	c := slots.hold(raw)
	if _, err := c.(syscall.Conn).SyscallConn(); err != nil {
		t.Errorf("SyscallConn through the slot: %v", err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Errorf("CloseWrite through the slot: %v", err)
	}
	if n := slots.Open(); n != 1 {
		t.Errorf("one connection held: %d open, want 1", n)
	}
	c.Close()
	c.Close()
	if n, used := slots.Open(), len(slots.cap); n != 0 || used != 1 {
		t.Errorf("after two closes of one connection: %d open, %d slots in use; want 0 and 1 (the other take's)", n, used)
	}
	close(stop)
	if slots.take(stop) && slots.take(stop) {
		t.Error("took 3 slots of 2")
	}
	if free := newConnSlots(0); free.cap != nil || !free.take(stop) {
		t.Error("max_connections 0: want no cap")
	}
}

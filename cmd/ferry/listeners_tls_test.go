package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// startWithConfig runs the app in-process on the configuration text cfg,
// in which %ADMIN%, %CONSUL% and %PORTn% (n from 0 to 3) are replaced by
// free addresses. It returns the process and the four ports.
func startWithConfig(t *testing.T, consulAddr, cfg string) (*inProcess, []string) {
	t.Helper()
	free := consultest.FreePorts(t, 5)
	ports := make([]string, 4)
	for i := range ports {
		ports[i] = "127.0.0.1:" + strconv.Itoa(free[i+1])
	}
	p := &inProcess{
		path:    filepath.Join(t.TempDir(), "ferry.hcl"),
		admin:   "127.0.0.1:" + strconv.Itoa(free[0]),
		consul:  consulAddr,
		logs:    &syncBuffer{},
		client:  &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}},
		stopped: make(chan error, 1),
	}
	p.writeRaw(t, cfg, ports)
	loaded, diags := config.Load(p.path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: p.logs})
	a, err := newApp(loaded, p.path, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.a = a
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.stopped <- a.run(ctx) }()
	p.waitFor(t, "admin /healthz", func() bool { code, _ := p.get("http://" + p.admin + "/healthz"); return code == 200 })
	return p, ports
}

func (p *inProcess) writeRaw(t *testing.T, cfg string, ports []string) {
	t.Helper()
	r := []string{"%ADMIN%", p.admin, "%CONSUL%", p.consul}
	for i, port := range ports {
		r = append(r, fmt.Sprintf("%%PORT%d%%", i), port)
	}
	if err := os.WriteFile(p.path, []byte(strings.NewReplacer(r...).Replace(cfg)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tlsConfigText is a configuration with a TLS listener (h2 offered) on
// %PORT0%, an h2c listener on %PORT1%, a redirect listener on %PORT2%
// and a route /users to the service user.
func tlsConfigText(leaf *testcerts.Leaf) string {
	return `admin = "%ADMIN%"
shutdown_timeout = "2s"
consul {
  address = "%CONSUL%"
}
listener "public" {
  address = "%PORT0%"
  http2   = true
  tls {
    certificate {
      cert_file = "` + leaf.CertFile + `"
      key_file  = "` + leaf.KeyFile + `"
    }
  }
}
listener "inside" {
  address = "%PORT1%"
  http2   = true
}
listener "redirect" {
  address        = "%PORT2%"
  redirect_https = "https://{host}:8443"
}
` + routeBlock("users", "user")
}

func h1Client(ca *testcerts.CA) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "shop.example"}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func h2Client(ca *testcerts.CA) *http.Client {
	var p http.Protocols
	p.SetHTTP2(true)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p,
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool, ServerName: "shop.example"}}}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p}}
}

// fetch GETs url with c: status, body and protocol ("" on error).
func fetch(c *http.Client, url string) (int, string, string) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error(), ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Proto
}

func TestListenerBlocks(t *testing.T) {
	agent := consultest.Start(t)
	backendFor(t, agent.Client(), "user", "user-1")
	ca := testcerts.NewCA(t, "listeners")
	leaf := ca.Leaf("shop", "shop.example")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	p, ports := startWithConfig(t, agent.HTTPAddr, tlsConfigText(leaf))
	h1, h2, h2c := h1Client(ca), h2Client(ca), h2cClient()
	defer func() {
		for _, c := range []*http.Client{h1, h2, h2c} {
			c.CloseIdleConnections()
		}
	}()
	p.waitFor(t, "the route over TLS", func() bool {
		code, body, _ := fetch(h1, "https://"+ports[0]+"/users/1")
		return code == 200 && body == "user-1"
	})
	for _, tc := range []struct {
		name, url string
		c         *http.Client
		proto     string
	}{
		{"HTTP/1.1 over TLS", "https://" + ports[0] + "/users/1", h1, "HTTP/1.1"},
		{"HTTP/2 over TLS", "https://" + ports[0] + "/users/1", h2, "HTTP/2.0"},
		{"h2c prior knowledge", "http://" + ports[1] + "/users/1", h2c, "HTTP/2.0"},
		{"HTTP/1.1 on the h2c listener", "http://" + ports[1] + "/users/1", h1, "HTTP/1.1"},
	} {
		code, body, proto := fetch(tc.c, tc.url)
		if code != 200 || body != "user-1" || proto != tc.proto {
			t.Errorf("%s: got %d %q %s, want 200 \"user-1\" %s", tc.name, code, body, proto, tc.proto)
		}
	}
	// The same refusals on both protocols (one core): no route is a 404.
	for _, c := range []*http.Client{h1, h2} {
		if code, _, proto := fetch(c, "https://"+ports[0]+"/nowhere"); code != 404 {
			t.Errorf("%s: no route: got %d, want 404", proto, code)
		}
	}

	// redirect_https: 308 to the HTTPS URL, host without port, path and query kept.
	req, _ := http.NewRequest(http.MethodPost, "http://"+ports[2]+"/a%2Fb/c?x=1&y", strings.NewReader("body"))
	req.Host = "Shop.Example:8080"
	resp, err := h1.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://shop.example:8443/a%2Fb/c?x=1&y"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("redirect: got %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// The admin API still answers.
	if code, _ := p.get("http://" + p.admin + "/v1/routes"); code != 200 {
		t.Errorf("admin /v1/routes: got %d", code)
	}
	p.stop(t)
}

func TestListenerReload(t *testing.T) {
	agent := consultest.Start(t)
	backendFor(t, agent.Client(), "user", "user-1")
	slowGot, release := slowBackend(t, agent)
	ca := testcerts.NewCA(t, "reload")
	leaf := ca.Leaf("shop", "shop.example")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	plain := `admin = "%ADMIN%"
shutdown_timeout = "2s"
consul {
  address = "%CONSUL%"
}
listener "a" {
  address = "%PORT0%"
}
` + routeBlock("users", "user") + routeBlock("slow", "slow")
	p, ports := startWithConfig(t, agent.HTTPAddr, plain)
	p.waitFor(t, "the routes", func() bool {
		c1, _ := p.get("http://" + ports[0] + "/users/1")
		c2, _ := p.get("http://" + ports[0] + "/slow/ready")
		return c1 == 200 && c2 == 200
	})

	// A request in flight across the reload: the old servers drain it (idle
	// keep-alive connections are closed, as nginx's old workers do).
	inFlight := make(chan int, 1)
	go func() { code, _ := p.get("http://" + ports[0] + "/slow/1"); inFlight <- code }()
	<-slowGot

	// "a" becomes TLS on the same address; "b" is added.
	withTLS := strings.Replace(tlsConfigText(leaf)+routeBlock("slow", "slow"), `listener "public"`, `listener "a"`, 1)
	withTLS = strings.Replace(withTLS, `listener "inside"`, `listener "b"`, 1)
	p.writeRaw(t, withTLS, ports)
	if err := p.a.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	release()
	if code := <-inFlight; code != 200 {
		t.Errorf("the request in flight during the reload: got %d, want 200", code)
	}
	h1 := h1Client(ca)
	defer h1.CloseIdleConnections()
	if code, _, _ := fetch(h1, "https://"+ports[0]+"/users/1"); code != 200 {
		t.Errorf("a, now TLS: got %d", code)
	}
	if code, _ := p.get("http://" + ports[1] + "/users/1"); code != 200 {
		t.Errorf("b, added: got %d", code)
	}

	// A listener that cannot bind refuses the whole reload: nothing changes.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p.writeRaw(t, withTLS+"listener \"c\" {\n  address = \""+busy.Addr().String()+"\"\n}\n", ports)
	if err := p.a.reload("test"); err == nil || !strings.Contains(err.Error(), `listener "c"`) {
		t.Errorf("reload with a busy address: got %v, want an error naming listener \"c\"", err)
	}
	if code, _ := p.get("http://" + ports[1] + "/users/1"); code != 200 {
		t.Errorf("b after a refused reload: got %d", code)
	}

	// Back to plain "a" only: "b" stops accepting.
	p.writeRaw(t, plain, ports)
	if err := p.a.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	p.waitFor(t, "b closed", func() bool {
		c, err := net.Dial("tcp", ports[1])
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if code, _ := p.get("http://" + ports[0] + "/users/1"); code != 200 {
		t.Errorf("a, plain again: got %d", code)
	}
	p.stop(t)
}

// slowBackend registers the service "slow", whose answers (but to
// /slow/ready) wait for release; got is closed when the first arrives.
func slowBackend(t *testing.T, agent *consultest.Agent) (got <-chan struct{}, release func()) {
	arrived, released := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow/ready" {
			once.Do(func() { close(arrived) })
			<-released
		}
		io.WriteString(w, "slow")
	}))
	t.Cleanup(srv.Close)
	release = func() { releaseOnce.Do(func() { close(released) }) }
	t.Cleanup(release) // before srv.Close: cleanups run last-in first-out
	err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "slow-1", Name: "slow", Address: "127.0.0.1", Port: srv.Listener.Addr().(*net.TCPAddr).Port,
		Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
	return arrived, release
}

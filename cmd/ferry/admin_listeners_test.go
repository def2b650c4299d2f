package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// TestAdminListeners: GET /v1/listeners lists every listener with its
// certificates' names and expiry; the certificate within 14 days of its
// expiry is warned about in the log at start (once) and flagged; a broken
// file at reload is named on the certificate it keeps serving.
func TestAdminListeners(t *testing.T) {
	agent := consultest.Start(t)
	backendFor(t, agent.Client(), "user", "user-1")
	ca := testcerts.NewCA(t, "admin-listeners")
	soon := ca.LeafUntil(time.Now().Add(5*24*time.Hour+time.Hour), "shop", "shop.example", "www.shop.example")
	later := ca.LeafUntil(time.Now().Add(60*24*time.Hour+time.Hour), "apps", "*.apps.example")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := strings.Replace(tlsConfigText(soon), "    certificate {", `    certificate {
      cert_file = "`+later.CertFile+`"
      key_file  = "`+later.KeyFile+`"
    }
    certificate {`, 1)
	// "apps" first: the default certificate; then "shop".
	cfg = strings.Replace(cfg, `listener "public" {`, "listen = \"%PORT3%\"\nlistener \"public\" {", 1)
	p, ports := startWithConfig(t, agent.HTTPAddr, cfg)

	var got struct {
		Listeners []listenerJSON `json:"listeners"`
	}
	read := func() {
		t.Helper()
		code, body := p.get("http://" + p.admin + "/v1/listeners")
		if code != 200 {
			t.Fatalf("GET /v1/listeners: %d %s", code, body)
		}
		got.Listeners = nil
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("GET /v1/listeners: %v\n%s", err, body)
		}
	}
	read()
	var names []string
	for _, l := range got.Listeners {
		names = append(names, l.Name)
	}
	if strings.Join(names, ",") != "listen,public,inside,redirect" {
		t.Fatalf("listeners: got %v, want listen, public, inside, redirect", names)
	}
	want := []struct {
		addr     string
		tls, h2  bool
		redirect string
		certs    int
	}{{ports[3], false, false, "", 0}, {ports[0], true, true, "", 2}, {ports[1], false, true, "", 0}, {ports[2], false, false, "https://{host}:8443", 0}}
	for i, w := range want {
		l := got.Listeners[i]
		if l.Address != w.addr || l.TLS != w.tls || l.HTTP2 != w.h2 || l.RedirectHTTPS != w.redirect || len(l.Certificates) != w.certs {
			t.Errorf("listener %s: got %+v, want %+v", l.Name, l, w)
		}
	}
	pub := got.Listeners[1]
	if pub.MinVersion != "1.2" || pub.ClientAuth || pub.LastError != "" || pub.LoadedAt == nil {
		t.Errorf("public: %+v", pub)
	}
	apps, shop := pub.Certificates[0], pub.Certificates[1]
	if apps.CertFile != later.CertFile || strings.Join(apps.Names, ",") != "*.apps.example" ||
		apps.DaysLeft != 60 || apps.ExpiresSoon || apps.Expired || !apps.NotAfter.Equal(later.Cert.NotAfter) {
		t.Errorf("apps certificate: %+v", apps)
	}
	if shop.CertFile != soon.CertFile || strings.Join(shop.Names, ",") != "shop.example,www.shop.example" ||
		shop.DaysLeft != 5 || !shop.ExpiresSoon || shop.Expired || !shop.NotAfter.Equal(soon.Cert.NotAfter) {
		t.Errorf("shop certificate: %+v", shop)
	}

	// The log warned, once, about the certificate expiring in 5 days only.
	warned := func(file string) int {
		n := 0
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(line, "expires in less than 14 days") && strings.Contains(line, file) {
				n++
			}
		}
		return n
	}
	if n := warned(soon.CertFile); n != 1 || !strings.Contains(p.logs.String(), "listener=public") {
		t.Errorf("the warning for the certificate expiring in 5 days: %d lines, want 1 naming the listener:\n%s", n, p.logs.String())
	}
	if n := warned(later.CertFile); n != 0 {
		t.Errorf("the certificate expiring in 60 days was warned about")
	}

	// A reload that changes the listener (h2 no longer offered) builds a
	// new certificate store: it does not warn again the same day.
	p.writeRaw(t, strings.Replace(cfg, "  http2   = true\n  tls {", "  http2   = false\n  tls {", 1), ports)
	if err := p.a.reload("test"); err != nil {
		t.Fatalf("reload: %v", err)
	}
	read()
	if got.Listeners[1].HTTP2 || len(got.Listeners[1].Certificates) != 2 {
		t.Fatalf("after the reload: %+v", got.Listeners[1])
	}
	if n := warned(soon.CertFile); n != 1 {
		t.Errorf("after a reload that rebuilt the listener: %d warnings, want still 1", n)
	}

	// A broken file (a configuration reload refuses it; the store's poll
	// finds it): the old certificate is served and the error shown on it;
	// no second warning the same day.
	if err := os.WriteFile(soon.CertFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "the reload failure in /v1/listeners", func() bool {
		read()
		return got.Listeners[1].ReloadFailures > 0
	})
	pub = got.Listeners[1]
	if pub.ReloadFailures == 0 || !strings.Contains(pub.LastError, soon.CertFile) ||
		!strings.Contains(pub.Certificates[1].LastError, soon.CertFile) || pub.Certificates[0].LastError != "" ||
		pub.Certificates[1].DaysLeft != 5 {
		t.Errorf("after a broken reload: %+v", pub)
	}
	if n := warned(soon.CertFile); n != 1 {
		t.Errorf("after a reload the same day: %d warnings, want still 1", n)
	}
	p.stop(t)
}

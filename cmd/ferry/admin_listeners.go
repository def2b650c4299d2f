package main

import (
	"crypto/tls"
	"net/http"
	"slices"
	"time"

	"github.com/ferry-proxy/ferry/proxy/certs"
)

// GET /v1/listeners: every listener being served — the listen shorthand and
// each listener block — with, for a TLS one, its certificates' names and
// expiry and the state of their reloads (SPEC §12).

// listenerJSON is one listener in GET /v1/listeners.
type listenerJSON struct {
	// Name is the block's name; "listen" for the listen shorthand.
	Name    string `json:"name"`
	Address string `json:"address"`
	TLS     bool   `json:"tls"`
	// HTTP2: h2 by ALPN on a TLS listener, h2c with prior knowledge on a
	// plain one.
	HTTP2 bool `json:"http2"`
	// RedirectHTTPS is the redirect_https template ("" when it serves).
	RedirectHTTPS string `json:"redirect_https"`
	// MinVersion ("1.2" or "1.3") and ClientAuth (client_ca_file set) on
	// a TLS listener.
	MinVersion string `json:"min_version,omitempty"`
	ClientAuth bool   `json:"client_auth"`
	// Reloads and ReloadFailures count certificate reloads since start;
	// LastError is the last failure ("" when the last reload was clean).
	Reloads        uint64            `json:"reloads"`
	ReloadFailures uint64            `json:"reload_failures"`
	LastError      string            `json:"last_error"`
	LoadedAt       *time.Time        `json:"loaded_at"`
	Certificates   []certificateJSON `json:"certificates"`
}

// certificateJSON is one certificate of a TLS listener.
type certificateJSON struct {
	CertFile  string    `json:"cert_file"`
	KeyFile   string    `json:"key_file"`
	Names     []string  `json:"names"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// DaysLeft is the whole days until NotAfter (negative once expired);
	// ExpiresSoon is true within the warning window (14 days).
	DaysLeft    int  `json:"days_left"`
	ExpiresSoon bool `json:"expires_soon"`
	Expired     bool `json:"expired"`
	// LastError is why the last reload of its files failed, the
	// certificate served being then the one loaded before.
	LastError string `json:"last_error"`
}

func (a *app) handleListeners(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, struct {
		Listeners []listenerJSON `json:"listeners"`
	}{a.listeners(time.Now())})
}

// listeners lists the listen shorthand first, then the listener blocks in
// the running configuration's order (a block it no longer names, while a
// reload switches, after them by name).
func (a *app) listeners(now time.Time) []listenerJSON {
	out := []listenerJSON{}
	if d := a.lc.data; d != nil {
		if addr := d.Addr(); addr != "" {
			out = append(out, listenerJSON{Name: "listen", Address: addr, Certificates: []certificateJSON{}})
		}
	}
	if a.lc.blocks == nil {
		return out
	}
	served := a.lc.blocks.Served()
	var names []string
	for _, l := range a.liveConfig().Listeners {
		if _, ok := served[l.Name]; ok {
			names = append(names, l.Name)
		}
	}
	var rest []string
	for name := range served {
		if !slices.Contains(names, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	for _, name := range append(names, rest...) {
		out = append(out, listenerView(served[name], now))
	}
	return out
}

func listenerView(b servedBlock, now time.Time) listenerJSON {
	lj := listenerJSON{Name: b.L.Name, Address: b.Addr, TLS: b.Store != nil, HTTP2: b.L.HTTP2,
		RedirectHTTPS: b.L.RedirectHTTPS, Certificates: []certificateJSON{}}
	if b.Store == nil {
		return lj
	}
	lj.MinVersion = "1.2"
	if b.L.TLS != nil {
		if b.L.TLS.MinVersion == tls.VersionTLS13 {
			lj.MinVersion = "1.3"
		}
		lj.ClientAuth = b.L.TLS.ClientCAFile != ""
	}
	st := b.Store.Stats()
	lj.Reloads, lj.ReloadFailures, lj.LastError = st.Reloads, st.Failures, st.LastError
	if !st.LoadedAt.IsZero() {
		t := st.LoadedAt.UTC()
		lj.LoadedAt = &t
	}
	for _, c := range st.Certificates {
		left := c.NotAfter.Sub(now)
		lj.Certificates = append(lj.Certificates, certificateJSON{
			CertFile: c.CertFile, KeyFile: c.KeyFile, Names: append([]string{}, c.Names...),
			NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
			DaysLeft: certs.DaysLeft(c.NotAfter, now), ExpiresSoon: left < certs.ExpiryWarning, Expired: left <= 0,
			LastError: c.LastError,
		})
	}
	return lj
}

// openConnections is each listener's open client connections, by the names
// /v1/listeners uses ("listen" for the shorthand), for the metrics.
func (a *app) openConnections() map[string]int64 {
	out := map[string]int64{}
	if blocks := a.lc.blocks; blocks != nil {
		out = blocks.OpenConnections()
	}
	if d := a.lc.data; d != nil && d.Addr() != "" {
		out["listen"] = d.OpenConnections()
	}
	return out
}

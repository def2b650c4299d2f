package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/ferry-proxy/ferry/proxy/filter/cache"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// purgeRequest is the body of POST /v1/cache/purge.
type purgeRequest struct {
	// URL is what to purge: "http://shop.example/products/1?color=red", or
	// with Prefix every URL of that host starting with its path.
	URL    string `json:"url"`
	Prefix bool   `json:"prefix"`
	// Route limits the purge to one route's cache; "": every route's.
	Route string `json:"route"`
}

// handlePurge answers POST /v1/cache/purge: it removes what the routes'
// caches (memory and Redis tiers) hold for a URL or a URL prefix, and
// answers how many objects went. Like the rest of the admin API it is meant
// for the admin listener (loopback by default), not the internet.
func (a *app) handlePurge(w http.ResponseWriter, r *http.Request) {
	var req purgeRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "ferry: the body must be JSON such as {\"url\": \"http://shop.example/p/1\", \"prefix\": false}: "+err.Error(), http.StatusBadRequest)
		return
	}
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		http.Error(w, "ferry: url must be an absolute http(s) URL with a host, such as http://shop.example/p/1", http.StatusBadRequest)
		return
	}
	path := "/"
	if u.EscapedPath() != "" {
		if path, err = wire.CanonicalPath(u.EscapedPath()); err != nil {
			http.Error(w, "ferry: url: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	host := strings.ToLower(u.Host) // as clients send it: with the port when they send one
	found, purged := false, 0
	var failed error
	a.caches.Each(func(route string, c *cache.Filter) {
		if req.Route != "" && route != req.Route {
			return
		}
		found = true
		n, err := c.Purge(r.Context(), host, path, u.RawQuery, req.Prefix)
		purged += n
		if err != nil && failed == nil {
			failed = err
		}
	})
	if !found {
		http.Error(w, "ferry: no route has a cache"+routeSuffix(req.Route), http.StatusNotFound)
		return
	}
	out := struct {
		Purged int    `json:"purged"`
		Error  string `json:"error,omitempty"`
	}{Purged: purged}
	if failed != nil {
		out.Error = failed.Error() // the memory tier was purged; the Redis tier failed
		w.WriteHeader(http.StatusBadGateway)
	}
	writeJSON(w, out)
}

func routeSuffix(route string) string {
	if route == "" {
		return ""
	}
	return " named " + route
}

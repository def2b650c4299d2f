package main

import (
	"net/http"
	"net/url"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
)

// Draining an instance (HAProxy's "set server state drain"): it gets no new
// requests, its requests in flight finish, and it stays out of rotation
// until undrained — across reloads, for as long as it stays in Consul's set.
// POST only, on the admin listener only (the data plane never serves the
// admin API):
//
//	POST /v1/upstreams/{service}/{instance}/drain
//	POST /v1/upstreams/{service}/{instance}/undrain
//
// {instance} is the Consul service ID; when two nodes register the same ID,
// ?node=NAME says which. The answer is the service as GET /v1/upstreams
// shows it.

func (a *app) registerDrain(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/upstreams/{service}/{instance}/drain", a.handleDrain(true))
	mux.HandleFunc("POST /v1/upstreams/{service}/{instance}/undrain", a.handleDrain(false))
}

func (a *app) handleDrain(drain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		name, id, node := r.PathValue("service"), r.PathValue("instance"), r.URL.Query().Get("node")
		svc := a.handler.Table().Service(name)
		if svc == nil {
			http.Error(w, "no routed service "+quoteName(name), http.StatusNotFound)
			return
		}
		var found []*route.Upstream
		for _, up := range svc.Upstreams() {
			if inst := up.Instance(); inst.ID == id && (node == "" || inst.Node == node) {
				found = append(found, up)
			}
		}
		switch {
		case len(found) == 0:
			http.Error(w, "service "+quoteName(name)+" has no instance "+quoteName(id), http.StatusNotFound)
			return
		case len(found) > 1:
			http.Error(w, "instance "+quoteName(id)+" is registered on several nodes: add ?node=NAME", http.StatusConflict)
			return
		}
		up := found[0]
		st := up.State()
		if st == nil {
			http.Error(w, "instance has no health state", http.StatusInternalServerError)
			return
		}
		now := time.Now()
		log := a.logger.Named("admin").With("service", name, "instance_id", id, "address", up.Addr())
		if drain {
			if st.Drain(now) {
				log.Info("instance drained: no new requests until undrained", "in_flight", st.InFlight())
				a.events.add(event{Time: now, Service: name, Instance: id, Event: "drained", Reason: "admin API"})
			}
		} else if st.Undrain() {
			log.Info("instance undrained: back in rotation")
			a.events.add(event{Time: now, Service: name, Instance: id, Event: "undrained", Reason: "admin API"})
		}
		writeJSON(w, a.serviceView(svc, a.discovery.Sets()[name], now))
	}
}

// sameOrigin refuses what a web page elsewhere could make a browser send to
// the admin API (a cross-site form POST): a request whose Origin header
// names another host. Clients that send no Origin (curl, scripts) pass.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func quoteName(s string) string { return `"` + s + `"` }

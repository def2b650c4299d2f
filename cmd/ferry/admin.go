package main

import (
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
)

// newAdminServer serves the admin API. It never shares a listener with the
// data plane.
func newAdminServer(a *app, logger hclog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if waiting := a.waitingServices(); len(waiting) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: waiting for Consul's first answer for"))
			for _, s := range waiting {
				w.Write([]byte(" " + s))
			}
			w.Write([]byte("\n"))
			return
		}
		// Sets from the snapshot file: ready or not as consul.snapshot_ready says.
		if fromSnap := a.snapshotServices(); len(fromSnap) > 0 {
			if !a.liveConfig().Consul.SnapshotReady {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("not ready: serving from the snapshot file (stale) until Consul answers for"))
			} else {
				w.Write([]byte("ready (stale): serving from the snapshot file until Consul answers for"))
			}
			for _, s := range fromSnap {
				w.Write([]byte(" " + s))
			}
			w.Write([]byte("\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("POST /v1/reload", a.handleReload) // reload.go
	a.registerObservability(mux)                      // admin_api.go
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          logger.Named("admin").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

// snapshotServices lists the watched services served from the snapshot
// file, Consul not having answered for them yet.
func (a *app) snapshotServices() []string {
	var out []string
	for name, set := range a.discovery.Sets() {
		if set.FromSnapshot {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// waitingServices lists the watched services Consul has not answered for yet.
func (a *app) waitingServices() []string {
	var out []string
	for name, set := range a.discovery.Sets() {
		if !set.Known {
			out = append(out, name)
		}
	}
	// Ready means routing has it: the table in use is rebuilt a moment after
	// discovery publishes, and a request sent on "ready" must find the
	// instances there.
	for _, svc := range a.handler.Table().Services() {
		if !svc.Known() && !slices.Contains(out, svc.Name()) {
			out = append(out, svc.Name())
		}
	}
	sort.Strings(out)
	return out
}

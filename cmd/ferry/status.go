package main

import (
	"context"
	"net/http"
	"time"

	"github.com/ferry-proxy/ferry/health"
)

// The status page's data beyond /v1/routes and /v1/upstreams: traffic per
// route and per instance with its 15-minute history (history.go), and the
// recent state changes (events.go).

// instanceHistoryJSON is when and why an instance is in its state, in GET
// /v1/upstreams.
type instanceHistoryJSON struct {
	Drained      bool       `json:"drained"`
	DrainedSince *time.Time `json:"drained_since"`
	// EjectedAt and EjectReason describe the current ejection.
	EjectedAt   *time.Time `json:"ejected_at"`
	EjectReason string     `json:"eject_reason"`
	// CheckFailingSince and CheckError describe failing active checks.
	CheckFailingSince *time.Time `json:"check_failing_since"`
	CheckError        string     `json:"check_error"`
	// NotRoutedSince is when an instance Consul keeps out of routing left
	// it (or was registered outside it); null when routable, or when it was
	// already out when ferry first asked Consul.
	NotRoutedSince *time.Time `json:"not_routed_since"`
}

func instanceHistory(st *health.State, ejected bool, consecutive int) instanceHistoryJSON {
	var h instanceHistoryJSON
	if t := st.DrainedSince(); !t.IsZero() {
		t = t.UTC()
		h.Drained, h.DrainedSince = true, &t
	}
	if ejected {
		at, refused := st.LastEjection()
		if !at.IsZero() {
			at = at.UTC()
			h.EjectedAt = &at
		}
		h.EjectReason = ejectReason(refused, consecutive)
	}
	if !st.ActiveHealthy() {
		if t := st.ActiveSince(); !t.IsZero() {
			t = t.UTC()
			h.CheckFailingSince = &t
		}
		h.CheckError = st.CheckError()
	}
	return h
}

// handleStats answers GET /v1/stats: per route and per instance, the latest
// step's rates and latencies and the last 15 minutes of them; of one
// service with ?service=NAME.
func (a *app) handleStats(w http.ResponseWriter, r *http.Request) {
	routes, instances := a.history.snapshot(r.URL.Query().Get("service"))
	writeJSON(w, struct {
		StepSeconds float64       `json:"step_seconds"`
		Points      int           `json:"points"`
		Routes      []trafficJSON `json:"routes"`
		Instances   []trafficJSON `json:"instances"`
	}{historyStep.Seconds(), historyPoints, routes, instances})
}

// handleEvents answers GET /v1/events: the recent state changes, newest
// first.
func (a *app) handleEvents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, struct {
		Events []event `json:"events"`
	}{a.events.recent()})
}

// eventInterval is how often instance states are compared for the event
// list; an event carries the time its state recorded, not this tick's.
const eventInterval = time.Second

// watchStatus samples traffic every historyStep and instance states every
// eventInterval until ctx is done.
func (a *app) watchStatus(ctx context.Context) {
	hist := time.NewTicker(historyStep)
	defer hist.Stop()
	ev := time.NewTicker(eventInterval)
	defer ev.Stop()
	a.history.sample(time.Now())
	a.events.observe(a.handler.Table())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-hist.C:
			a.history.sample(now)
		case <-ev.C:
			a.events.observe(a.handler.Table())
		}
	}
}

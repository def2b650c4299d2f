package main

import (
	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/prometheus/client_golang/prometheus"
)

// histogramCollector exports proxy's duration histograms (request durations
// per route, attempt durations per service) as Prometheus histograms, read
// at scrape time from the table in use. go-metrics has no histogram type;
// see metrics.go. Series of routes and services that are gone disappear
// with them. Safe for concurrent use.
type histogramCollector struct {
	am *appMetrics
}

// bucketBounds are route.DurationBuckets in seconds.
var bucketBounds = func() []float64 {
	out := make([]float64, len(route.DurationBuckets))
	for i, b := range route.DurationBuckets {
		out[i] = b.Seconds()
	}
	return out
}()

var (
	descDuration = prometheus.NewDesc(mDuration.name(), mDuration.help, []string{"route", "service"}, nil)
	descAttempt  = prometheus.NewDesc(mAttemptDuration.name(), mAttemptDuration.help, []string{"service"}, nil)
)

// Describe sends the two descriptors.
func (c histogramCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDuration
	ch <- descAttempt
}

// Collect sends one histogram per route and one per routed service.
func (c histogramCollector) Collect(ch chan<- prometheus.Metric) {
	if c.am.src.table == nil {
		return
	}
	t := c.am.src.table()
	t.EachRoute(func(r *route.Route) {
		if rs := r.Stats(); rs != nil {
			spec := r.Spec()
			ch <- constHistogram(descDuration, rs.Durations().Snapshot(), spec.Name, spec.Service)
		}
	})
	for _, svc := range t.Services() {
		if ss := svc.Stats(); ss != nil {
			ch <- constHistogram(descAttempt, ss.AttemptDurations().Snapshot(), svc.Name())
		}
	}
}

func constHistogram(desc *prometheus.Desc, s route.HistogramSnapshot, labels ...string) prometheus.Metric {
	cum := s.Cumulative()
	buckets := make(map[float64]uint64, len(cum))
	for i, n := range cum {
		buckets[bucketBounds[i]] = n
	}
	return prometheus.MustNewConstHistogram(desc, s.Count(), s.Sum.Seconds(), buckets, labels...)
}

package route

import (
	"sync/atomic"
	"time"
)

// Duration histograms.
//
// A Prometheus summary (quantiles computed in each process) cannot be
// aggregated: the p99 of a fleet of sidecars is not a function of their
// p99s. A histogram can (sum the bucket rates, then histogram_quantile), so
// request and attempt durations are histograms with fixed buckets, recorded
// with two atomic adds and no allocation.

// DurationBuckets are the upper bounds of the duration histograms, chosen for
// a proxy: sub-millisecond steps for loopback and same-host upstreams, the
// usual 1-2.5-5 steps through the range where web services answer, and the
// top buckets at the default response_timeout (30 s) and beyond it for long
// streams. Envoy's default buckets cover the same range. Durations above the
// last bound fall in the +Inf bucket.
var DurationBuckets = [numBuckets]time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second, 60 * time.Second,
}

const numBuckets = 16

// Histogram counts durations in DurationBuckets. Safe for concurrent use;
// Observe allocates nothing and takes no lock.
type Histogram struct {
	// sum first: with the short buckets' counts it makes one cache line,
	// the only one a fast request writes.
	sum    atomic.Int64                  // nanoseconds
	counts [numBuckets + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
}

// Observe counts one duration.
func (h *Histogram) Observe(d time.Duration) {
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(int64(d))
}

// bucketOf returns the index of the first bucket whose bound is ≥ d (a
// binary search: four comparisons).
func bucketOf(d time.Duration) int {
	lo, hi := 0, numBuckets
	for lo < hi {
		mid := (lo + hi) / 2
		if d <= DurationBuckets[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Snapshot returns the histogram's totals so far. The counts are read one
// by one while requests may add to them, so a snapshot can miss a
// concurrent observation (it shows up in the next); Count always equals the
// sum of the bucket counts.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// HistogramSnapshot is a Histogram's totals at one moment: Counts[i] counts
// the durations in bucket i (not cumulative; the last is +Inf). It is a
// plain value.
type HistogramSnapshot struct {
	Counts [numBuckets + 1]uint64
	Sum    time.Duration
}

// Count is the number of durations observed.
func (s HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Cumulative returns the counts of durations ≤ each bound of DurationBuckets,
// as Prometheus exposes histogram buckets.
func (s HistogramSnapshot) Cumulative() [numBuckets]uint64 {
	var out [numBuckets]uint64
	var n uint64
	for i := range out {
		n += s.Counts[i]
		out[i] = n
	}
	return out
}

// Sub returns what was observed between prev and s (prev taken earlier from
// the same histogram).
func (s HistogramSnapshot) Sub(prev HistogramSnapshot) HistogramSnapshot {
	var d HistogramSnapshot
	for i := range s.Counts {
		if s.Counts[i] >= prev.Counts[i] {
			d.Counts[i] = s.Counts[i] - prev.Counts[i]
		}
	}
	d.Sum = s.Sum - prev.Sum
	return d
}

// Quantile estimates the q-quantile (0 < q ≤ 1) as Prometheus'
// histogram_quantile does: linear interpolation within the bucket that holds
// it (from 0 in the first bucket); in the +Inf bucket it returns the last
// bound. It returns 0 when nothing was observed.
func (s HistogramSnapshot) Quantile(q float64) time.Duration {
	total := s.Count()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var below uint64
	for i, c := range s.Counts {
		if c == 0 || float64(below+c) < rank {
			below += c
			continue
		}
		if i == numBuckets {
			return DurationBuckets[numBuckets-1]
		}
		lower := time.Duration(0)
		if i > 0 {
			lower = DurationBuckets[i-1]
		}
		frac := (rank - float64(below)) / float64(c)
		return lower + time.Duration(frac*float64(DurationBuckets[i]-lower))
	}
	return DurationBuckets[numBuckets-1]
}

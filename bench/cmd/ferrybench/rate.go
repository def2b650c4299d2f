package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// rateResult is what one fixed-rate run measured.
type rateResult struct {
	Requests       int64 // completed with a 2xx/3xx
	Errors         int64 // failed, non-2xx/3xx, or not sent (too many in flight)
	RPS            float64
	P50, P99, P999 time.Duration
}

// maxInFlight bounds the open-loop client: a request due while this many are
// outstanding is counted as an error rather than queued (the target is
// overloaded, and queuing in the client would hide it).
const maxInFlight = 1024

// runRate sends GETs to url at a fixed rate for d, open loop: request i is
// due at start + i/rate whatever happened to the earlier ones, and its
// latency runs from that due time (so a stall is charged to every request it
// delayed, rather than hidden: no coordinated omission).
func runRate(ctx context.Context, url string, rate int, d time.Duration) rateResult {
	tr := &http.Transport{MaxIdleConnsPerHost: maxInFlight, DisableCompression: true, ForceAttemptHTTP2: false}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var (
		wg       sync.WaitGroup
		inFlight atomic.Int64
		errs     atomic.Int64
	)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-ctx.Done():
				return rateResult{}
			case <-time.After(wait):
			}
		}
		if inFlight.Load() >= maxInFlight {
			errs.Add(1)
			lat[i] = -1
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			resp, err := client.Get(url)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode >= 400 {
				errs.Add(1)
				lat[i] = -1
				return
			}
			lat[i] = time.Since(due)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	ok := make([]time.Duration, 0, n)
	for _, l := range lat {
		if l >= 0 {
			ok = append(ok, l)
		}
	}
	slices.Sort(ok)
	return rateResult{
		Requests: int64(len(ok)),
		Errors:   errs.Load(),
		RPS:      float64(len(ok)) / elapsed.Seconds(),
		P50:      quantile(ok, 0.50),
		P99:      quantile(ok, 0.99),
		P999:     quantile(ok, 0.999),
	}
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

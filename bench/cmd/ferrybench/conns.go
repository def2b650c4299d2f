package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-proxy/ferry/bench/internal/benchkit"
)

// Scenario (j), connection scale: N keep-alive client connections are
// opened and each sends one GET; once they are all idle the target's RSS
// (all its processes) is read again, and the growth over N is the RSS per
// idle connection. Then requests go over those connections at a modest
// fixed rate, open loop (latency from each request's due time), and last a
// burst: 3,000 of them send a GET at the same instant. Errors are failed or
// non-200 answers in any phase.

// connsResult is what one (j) run measured.
type connsResult struct {
	Idle         int     // connections held open
	RSSBaseKiB   int64   // before they were opened
	RSSIdleKiB   int64   // with all of them open and idle
	PerIdleBytes float64 // (RSSIdle - RSSBase) / Idle
	Requests     int64   // answered 200, all phases
	Errors       int64
	PhaseErrors  [3]int64 // opening, rate, burst
	RateP99      time.Duration
	BurstP99     time.Duration
	BurstTook    time.Duration // until the burst's last answer
}

// heldConn is one client connection of scenario (j).
type heldConn struct {
	c  net.Conn
	br *bufio.Reader
}

// failedStatus is the last non-200 status (j) saw, for the log.
var failedStatus atomic.Int64

// get sends one GET and reads its answer; ok is a 200 with its whole body.
func (h *heldConn) get(path string) bool {
	h.c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(h.c, "GET "+path+" HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		failedStatus.Store(int64(resp.StatusCode))
	}
	return err == nil && resp.StatusCode == 200
}

// runConns runs scenario (j) against the target at url (host:port after
// http://) whose process tree is pid's.
func runConns(ctx context.Context, url string, pid int, o options) (connsResult, error) {
	addr := strings.TrimPrefix(url, "http://")
	r := connsResult{Idle: o.idleConns}
	var errs, oks atomic.Int64
	r.RSSBaseKiB = benchkit.RSS(pid)

	// Open the connections, a few hundred at a time.
	conns := make([]*heldConn, o.idleConns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	for i := range conns {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				errs.Add(1)
				return
			}
			h := &heldConn{c: c, br: bufio.NewReaderSize(c, 1024)}
			if h.get("/j/open") {
				oks.Add(1)
			} else {
				errs.Add(1)
			}
			conns[i] = h
		}()
	}
	wg.Wait()
	r.PhaseErrors[0] = errs.Load()
	defer func() {
		for _, h := range conns {
			if h != nil {
				h.c.Close()
			}
		}
	}()
	open := slices.DeleteFunc(slices.Clone(conns), func(h *heldConn) bool { return h == nil })
	if len(open) == 0 {
		return r, fmt.Errorf("no connection could be opened to %s", addr)
	}
	// Let them settle idle (ferry parks a connection quiet for 250 ms).
	sleepCtx(ctx, 3*time.Second)
	r.RSSIdleKiB = benchkit.RSS(pid)
	r.PerIdleBytes = float64(r.RSSIdleKiB-r.RSSBaseKiB) * 1024 / float64(o.idleConns)

	// A modest rate over the idle connections, each used by one request at
	// a time (round robin: at most rate × duration of them, once each).
	n := int(float64(o.idleRate) * o.dur.Seconds())
	interval := time.Second / time.Duration(o.idleRate)
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if !sleepCtx(ctx, time.Until(due)) {
			return r, ctx.Err()
		}
		h := open[i%len(open)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if h.get("/j/rate") {
				oks.Add(1)
				lat[i] = time.Since(due)
			} else {
				errs.Add(1)
				lat[i] = -1
			}
		}()
	}
	wg.Wait()
	r.RateP99 = p99Of(lat)
	r.PhaseErrors[1] = errs.Load() - r.PhaseErrors[0]

	// The burst: burstSize connections send at the same instant.
	burst := open[:min(o.burst, len(open))]
	blat := make([]time.Duration, len(burst))
	release := make(chan struct{})
	var ready sync.WaitGroup
	for i, h := range burst {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-release
			t0 := time.Now()
			if h.get("/j/burst") {
				oks.Add(1)
				blat[i] = time.Since(t0)
			} else {
				errs.Add(1)
				blat[i] = -1
			}
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(release)
	wg.Wait()
	r.BurstTook = time.Since(t0)
	r.BurstP99 = p99Of(blat)
	r.Requests, r.Errors = oks.Load(), errs.Load()
	r.PhaseErrors[2] = r.Errors - r.PhaseErrors[0] - r.PhaseErrors[1]
	return r, nil
}

// p99Of returns the 99th percentile of the successful latencies (< 0:
// failed).
func p99Of(lat []time.Duration) time.Duration {
	ok := slices.DeleteFunc(slices.Clone(lat), func(d time.Duration) bool { return d < 0 })
	slices.Sort(ok)
	return quantile(ok, 0.99)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// raiseFileLimit lifts this process's soft RLIMIT_NOFILE to its hard limit
// (a root driver may raise the hard limit too), so that it and the targets
// it starts, which inherit it, can hold scenario (j)'s connections. It
// returns the limit in force.
func raiseFileLimit(want uint64) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Max < want {
		up := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return want
		}
	}
	rl.Cur = rl.Max
	// Setting it explicitly (even to what Go set at start) also makes the
	// children inherit it rather than the limit the driver started with.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintln(os.Stderr, "ferrybench: cannot set RLIMIT_NOFILE:", err)
	}
	return rl.Cur
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	Requests int64
	RPS      float64
	P50, P99 time.Duration
	Errors   int64 // socket errors plus non-2xx/3xx responses
}

// runWrk runs wrk against url for d and parses its --latency report.
func runWrk(ctx context.Context, url string, threads, conns int, d time.Duration, headers ...string) (wrkResult, error) {
	wait, err := startWrk(ctx, url, threads, conns, d, headers...)
	if err != nil {
		return wrkResult{}, err
	}
	return wait()
}

// startWrk starts wrk as runWrk does and returns once the process exists;
// wait waits for it and parses its report. The paired mode (paired.go)
// uses it to start one wrk strictly before the other.
func startWrk(ctx context.Context, url string, threads, conns int, d time.Duration, headers ...string) (wait func() (wrkResult, error), err error) {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "--timeout", "5s"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("wrk %s: %w", url, err)
	}
	return func() (wrkResult, error) {
		if err := cmd.Wait(); err != nil {
			return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out.String())
		}
		return parseWrk(out.String())
	}, nil
}

// parseWrk reads wrk 4.1's report:
//
//	Latency Distribution
//	   50%    1.02ms
//	   99%    5.31ms
//	123456 requests in 5.00s, 12.34MB read
//	Socket errors: connect 0, read 0, write 0, timeout 0
//	Non-2xx or 3xx responses: 5
//	Requests/sec:  24691.20
func parseWrk(s string) (wrkResult, error) {
	var r wrkResult
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "50%":
			r.P50 = parseWrkDuration(f[1])
		case len(f) == 2 && f[0] == "99%":
			r.P99 = parseWrkDuration(f[1])
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			r.Requests, _ = strconv.ParseInt(f[0], 10, 64)
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.RPS, _ = strconv.ParseFloat(f[1], 64)
		case len(f) > 0 && f[0] == "Socket":
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				r.Errors += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, _ := strconv.ParseInt(f[4], 10, 64)
			r.Errors += n
		}
	}
	if r.Requests == 0 || r.RPS == 0 {
		return r, fmt.Errorf("wrk: no result in:\n%s", s)
	}
	return r, nil
}

// parseWrkDuration reads wrk's "812.00us", "1.02ms", "2.00s", "1.00m".
func parseWrkDuration(s string) time.Duration {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			return time.Duration(f * float64(u.unit))
		}
	}
	return 0
}

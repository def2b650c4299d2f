// Command ferrybench is ferry's side-by-side load benchmark (make bench): a
// real Consul dev agent, two backends registered in it, and ferry, nginx and
// HAProxy in front of them, measured in alternating rounds against each other
// and against the backend directly. With -profile it instead captures a CPU
// profile of ferry under wrk (make profile).
//
// Everything runs on loopback; every process it starts is stopped by PID when
// it ends, and nothing else is touched.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-proxy/ferry/bench/internal/benchkit"
)

// scenario is one kind of load.
type scenario struct {
	key, title string
	path       string
	headers    []string
	rate       bool     // fixed-rate open loop instead of wrk
	conns      bool     // connection scale (conns.go) instead of wrk
	targets    []string // when set, the only targets measured in this scenario
	// tls runs a TLS or HTTP/2 scenario (scenarios_tls.go) against a
	// target's tlsURL; targets without one are skipped.
	tls func(ctx context.Context, t *target, o options) (run, error)
}

// runs reports whether target t is measured in scenario s.
func (s scenario) runs(t *target) bool {
	if t.scenarios != "" && !strings.Contains(t.scenarios, s.key) {
		return false
	}
	return len(s.targets) == 0 || slices.Contains(s.targets, t.name)
}

var scenarios = []scenario{
	{key: "a", title: "(a) 64-byte responses, keep-alive", path: "/a"},
	{key: "b", title: "(b) 64 KiB responses, keep-alive", path: "/b?size=65536"},
	{key: "c", title: "(c) a new connection per request (Connection: close)", path: "/c", headers: []string{"Connection: close"}},
	{key: "d", title: "(d) fixed rate, open loop", path: "/d", rate: true},
	tlsScenarios[0], tlsScenarios[1], tlsScenarios[2], // (e), (f), (g): scenarios_tls.go
	{key: "j", title: "(j) connection scale: idle keep-alive connections, a modest rate over them, a burst", conns: true},
}

// run is one measurement of one target in one scenario.
type run struct {
	Round    int
	Requests int64
	Errors   int64
	RPS      float64
	P50      time.Duration
	P99      time.Duration
	P999     time.Duration // (d) only
	CPUPerRq float64       // µs of the target's own CPU per request
	PeakKiB  int64         // VmHWM over the run (since start if the reset failed)

	// (j) only: RSS per idle connection in bytes, RSS with them open, the
	// burst's p99 and how long it took.
	PerIdle    float64
	RSSIdleKiB int64
	BurstP99   time.Duration
	BurstTook  time.Duration
	PhaseErrs  [3]int64 // (j): opening, rate, burst
}

type options struct {
	root       string
	ferryBin   string
	ferryB     string
	ferryBName string
	paired     bool
	rounds     int
	dur        time.Duration
	threads    int
	conns      int
	rate       int
	only       string
	targets    string
	svg        string
	jsonOut    string
	profile    string
	profSecs   int
	hold       time.Duration
	rawCommand string
	idleConns  int
	idleRate   int
	burst      int
	fileLimit  uint64
}

func main() {
	var o options
	flag.StringVar(&o.root, "root", ".", "the ferry checkout (bin/ferry, bin/demo-backend, bin/consul)")
	flag.StringVar(&o.ferryBin, "ferry", "", "the ferry binary (default ROOT/bin/ferry)")
	flag.StringVar(&o.ferryB, "ferry-b", "", "a second ferry binary, measured as target \"ferry-b\" "+
		"alongside the others (for before/after comparisons in one run)")
	flag.StringVar(&o.ferryBName, "ferry-b-name", "ferry-b", "the second ferry's name in the tables and the chart")
	flag.BoolVar(&o.paired, "paired", false, "with -ferry-b: instead of the benchmark, load ferry and the second ferry at the same time "+
		"in each round (scenarios a, b, c) and report the per-round ratios of their CPU per request and RPS (paired.go)")
	flag.IntVar(&o.rounds, "rounds", 3, "alternating rounds per scenario")
	flag.DurationVar(&o.dur, "d", 5*time.Second, "duration of each run (whole seconds)")
	flag.IntVar(&o.threads, "t", 2, "wrk threads")
	flag.IntVar(&o.conns, "c", 64, "wrk connections")
	flag.IntVar(&o.rate, "rate", 2000, "requests/s offered in scenario (d)")
	flag.StringVar(&o.only, "scenarios", "a,b,c,d,e,f,g,j", "scenarios to run")
	flag.IntVar(&o.idleConns, "idle-conns", 10000, "keep-alive connections held open in scenario (j)")
	flag.IntVar(&o.idleRate, "idle-rate", 1000, "requests/s sent over them in scenario (j), for -d")
	flag.IntVar(&o.burst, "burst", 3000, "connections sending a request at the same instant in scenario (j)")
	flag.StringVar(&o.targets, "targets", "direct,ferry,nginx,haproxy", "targets to measure")
	flag.StringVar(&o.svg, "svg", "", "write the chart here (e.g. docs/benchmarks.svg)")
	flag.StringVar(&o.jsonOut, "json", "", "write every run's figures here")
	flag.StringVar(&o.profile, "profile", "", "instead of the benchmark: write a CPU profile of ferry under wrk (scenario a) here")
	flag.IntVar(&o.profSecs, "profile-seconds", 10, "profile length with -profile")
	flag.DurationVar(&o.hold, "hold", 0, "instead of the benchmark: start everything, print the targets' URLs and PIDs, "+
		"and keep them up this long (or until interrupted) for experiments by hand")
	flag.Parse()
	o.rawCommand = strings.Join(os.Args, " ")
	if o.ferryBin == "" {
		o.ferryBin = filepath.Join(o.root, "bin/ferry")
	}

	// Scenario (j) holds idle-conns client connections here, and each
	// target as many plus its upstream ones; the targets inherit the limit.
	o.fileLimit = raiseFileLimit(uint64(2*o.idleConns + 4096))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := mainErr(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ferrybench:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, o options) error {
	if o.paired {
		return runPaired(ctx, o) // paired.go
	}
	want := map[string]bool{}
	for _, t := range strings.Split(o.targets, ",") {
		want[strings.TrimSpace(t)] = true
	}
	if o.ferryB != "" {
		want[o.ferryBName] = true
	}
	if o.profile != "" {
		want = map[string]bool{"ferry": true}
	}
	l, err := startLab(ctx, o, want)
	if err != nil {
		return err
	}
	defer l.stop()
	defer os.RemoveAll(l.dir)
	if wantsTLS(o) && o.profile == "" {
		if err := setupTLS(ctx, l, o); err != nil { // scenarios_tls.go
			return err
		}
	}
	if o.profile != "" {
		return profile(ctx, l, o)
	}
	if o.hold > 0 {
		for _, t := range l.targets {
			fmt.Printf("%s %s pid %d\n", t.name, t.url, t.proc.PID())
		}
		if l.ferry != nil {
			fmt.Printf("ferry-admin http://%s\n", l.ferryAdm)
		}
		select {
		case <-ctx.Done():
		case <-time.After(o.hold):
		}
		return nil
	}
	var targets []*target
	for _, t := range l.targets {
		if want[t.name] || t.scenarios != "" {
			targets = append(targets, t)
		}
	}
	var scs []scenario
	for _, s := range scenarios {
		if strings.Contains(o.only, s.key) {
			scs = append(scs, s)
		}
	}

	results := map[string]map[string][]run{} // scenario → target → runs
	resetOK := true
	start := time.Now()
	for round := range o.rounds {
		for _, s := range scs {
			if results[s.key] == nil {
				results[s.key] = map[string][]run{}
			}
			// Rotate the order each round, so no target always runs first
			// (on a warm or a cold machine).
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				if s.conns && t.name == "direct" || s.tls != nil && t.tlsURL == "" {
					continue // (j) compares proxies; (e), (f), (g) the TLS ones
				}
				if !s.runs(t) {
					continue
				}
				after := l.beforeRun(s, t)
				r, ok, err := measure(ctx, t, s, o)
				if err != nil {
					return err
				}
				after(r)
				resetOK = resetOK && ok
				r.Round = round + 1
				results[s.key][t.name] = append(results[s.key][t.name], r)
				if s.conns {
					fmt.Fprintf(os.Stderr, "round %d %s %-8s %d idle: %6.0f B/conn  rate p99 %6.2f ms  burst p99 %6.2f ms (%v)  peak %5.1f MiB  errors %d (open %d, rate %d, burst %d; last status %d)\n",
						round+1, s.key, t.name, o.idleConns, r.PerIdle, ms(r.P99), ms(r.BurstP99), r.BurstTook.Round(time.Millisecond), mib(r.PeakKiB), r.Errors,
						r.PhaseErrs[0], r.PhaseErrs[1], r.PhaseErrs[2], failedStatus.Swap(0))
					continue
				}
				fmt.Fprintf(os.Stderr, "round %d %s %-8s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %6.1f µs/req  %5.1f MiB  errors %d\n",
					round+1, s.key, t.name, r.RPS, ms(r.P50), ms(r.P99), r.CPUPerRq, mib(r.PeakKiB), r.Errors)
			}
		}
	}
	elapsed := time.Since(start)
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.name
	}
	report(os.Stdout, o, scs, names, results, resetOK, elapsed)
	l.printNotes(os.Stdout)
	if o.svg != "" {
		charted := slices.DeleteFunc(slices.Clone(scs), func(s scenario) bool { return s.conns })
		if err := os.WriteFile(o.svg, []byte(chart(charted, names, results, o)), 0o644); err != nil {
			return err
		}
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// measure runs one scenario against one target, reading the target's CPU
// time and peak RSS around it. ok is false when the peak could not be reset
// (then PeakKiB is the peak since the process started).
func measure(ctx context.Context, t *target, s scenario, o options) (run, bool, error) {
	pid := t.proc.PID()
	ok := benchkit.ResetPeakRSS(pid)
	cpu0 := benchkit.CPU(pid)
	var r run
	if s.tls != nil {
		var err error
		if r, err = s.tls(ctx, t, o); err != nil {
			return r, ok, err
		}
	} else if s.conns {
		cr, err := runConns(ctx, t.url, pid, o)
		if err != nil {
			return r, ok, err
		}
		r = run{Requests: cr.Requests, Errors: cr.Errors, RPS: float64(o.idleRate), P99: cr.RateP99,
			PerIdle: cr.PerIdleBytes, RSSIdleKiB: cr.RSSIdleKiB, BurstP99: cr.BurstP99, BurstTook: cr.BurstTook,
			PhaseErrs: cr.PhaseErrors}
	} else if s.rate {
		rr := runRate(ctx, t.url+s.path, o.rate, o.dur)
		r = run{Requests: rr.Requests, Errors: rr.Errors, RPS: rr.RPS, P50: rr.P50, P99: rr.P99, P999: rr.P999}
	} else {
		wr, err := runWrk(ctx, t.url+s.path, o.threads, o.conns, o.dur, s.headers...)
		if err != nil {
			return r, ok, err
		}
		r = run{Requests: wr.Requests, Errors: wr.Errors, RPS: wr.RPS, P50: wr.P50, P99: wr.P99}
	}
	cpu := benchkit.CPU(pid) - cpu0
	if r.Requests > 0 {
		r.CPUPerRq = float64(cpu.Microseconds()) / float64(r.Requests)
	}
	r.PeakKiB = benchkit.PeakRSS(pid)
	if t.proc.Exited() {
		return r, ok, fmt.Errorf("%s exited during scenario %s", t.name, s.key)
	}
	return r, ok, ctx.Err()
}

// profile captures ferry's CPU profile over profSecs while wrk loads it
// with scenario (a), then prints the top entries.
func profile(ctx context.Context, l *lab, o options) error {
	if l.ferry == nil {
		return fmt.Errorf("ferry did not start")
	}
	d := time.Duration(o.profSecs) * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := runWrk(ctx, l.ferry.url+"/a", o.threads, o.conns, d+2*time.Second)
		done <- err
	}()
	time.Sleep(time.Second) // let wrk open its connections
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", l.ferryAdm, o.profSecs)
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("pprof: %s: %s", resp.Status, b)
	}
	if err := os.MkdirAll(filepath.Dir(o.profile), 0o755); err != nil {
		return err
	}
	f, err := os.Create(o.profile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ferrybench: CPU profile of ferry (GOMAXPROCS=2) under wrk -t%d -c%d, %ds: %s\n",
		o.threads, o.conns, o.profSecs, o.profile)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(k int64) float64        { return float64(k) / 1024 }

// median of the runs' values of f.
func median(runs []run, f func(run) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func minMax(runs []run, f func(run) float64) (lo, hi float64) {
	for i, r := range runs {
		x := f(r)
		if i == 0 || x < lo {
			lo = x
		}
		if i == 0 || x > hi {
			hi = x
		}
	}
	return lo, hi
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

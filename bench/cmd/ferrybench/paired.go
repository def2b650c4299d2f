package main

// The paired A/B mode, -paired with -ferry-b: ferry (A) and the second
// binary (B) loaded at the same time rather than one after the other.
//
// In alternating rounds each run has the machine to itself, but on a
// shared two-core machine "the machine" changes from one run to the next
// (other sessions' builds and tests), so a single round moves by ±15 % and
// a few per cent between two binaries drown in it. Here both ferries run
// side by side under two identical wrk loads started together: whatever
// else the machine is doing slows both alike, and the per-round ratio B÷A
// of the CPU each spends per request stays steady even when the absolute
// figures do not. Each round starts both afresh (no heap or pool state
// carried from one round to the next), warms both up with the same
// concurrent load, then measures; whose wrk is started first alternates
// between rounds, so a head start of a millisecond favours neither.
//
// Only the plain wrk scenarios are paired: (a), (b) and (c). The others
// are skipped with a note; -targets and -svg do not apply.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ferry-proxy/ferry/bench/internal/benchkit"
)

// pairedKeys are the scenarios the paired mode can run.
const pairedKeys = "abc"

// pairWarmup is the unmeasured concurrent load before each measured one:
// long enough for both ferries' upstream pools to fill and their heaps to
// reach their working size, so that the run compares steady states.
const pairWarmup = 2 * time.Second

// pairSide is what one ferry did in one paired run.
type pairSide struct {
	Name     string
	Requests int64
	Errors   int64
	RPS      float64
	P50, P99 time.Duration
	UserUs   float64 // user CPU µs per request
	SysUs    float64 // system CPU µs per request
}

// CPUPerRq is the CPU µs per request, user and system together.
func (p pairSide) CPUPerRq() float64 { return p.UserUs + p.SysUs }

// pairRun is one scenario in one round: A and B loaded at the same time.
type pairRun struct {
	Round int
	First string  // whose wrk was started first
	Load1 float64 // 1-minute load average right after the run
	A, B  pairSide
}

// ratio is b÷a, NaN when a is 0 (statsOf leaves NaNs out).
func ratio(b, a float64) float64 {
	if a == 0 {
		return math.NaN()
	}
	return b / a
}

// ratioStats summarises the per-round ratios of one figure.
type ratioStats struct {
	N                      int
	Median, Mean, Min, Max float64
}

// statsOf returns the statistics of xs, NaNs left out.
func statsOf(xs []float64) ratioStats {
	v := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(v) == 0 {
		return ratioStats{}
	}
	slices.Sort(v)
	s := ratioStats{N: len(v), Min: v[0], Max: v[len(v)-1]}
	for _, x := range v {
		s.Mean += x
	}
	s.Mean /= float64(len(v))
	if len(v)%2 == 1 {
		s.Median = v[len(v)/2]
	} else {
		s.Median = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return s
}

// pairedScenarios returns the scenarios of only the paired mode runs, and
// the keys of those it cannot.
func pairedScenarios(only string) (scs []scenario, skipped []string) {
	for _, s := range scenarios {
		if !strings.Contains(only, s.key) {
			continue
		}
		if strings.Contains(pairedKeys, s.key) {
			scs = append(scs, s)
		} else {
			skipped = append(skipped, s.key)
		}
	}
	return scs, skipped
}

// runPaired is the paired mode: Consul and the backends as setup starts
// them, then -rounds rounds of both ferries side by side.
func runPaired(ctx context.Context, o options) error {
	switch {
	case o.ferryB == "":
		return errors.New("-paired needs -ferry-b")
	case o.profile != "" || o.hold > 0:
		return errors.New("-paired does not go with -profile or -hold")
	case o.ferryBName == "ferry":
		return errors.New("-paired: -ferry-b-name must not be \"ferry\"")
	}
	scs, skipped := pairedScenarios(o.only)
	if len(scs) == 0 {
		return fmt.Errorf("-paired runs scenarios a, b and c only; -scenarios %q has none", o.only)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(os.Stderr, "ferrybench: -paired skips scenarios %s (only a, b and c are paired)\n", strings.Join(skipped, ","))
	}
	if o.svg != "" {
		fmt.Fprintln(os.Stderr, "ferrybench: -paired draws no chart; -svg ignored")
	}
	// From here o.only holds the paired keys alone: setup then starts no
	// filter backends, setupTLS is not needed, and ferry's max_connections
	// is the usual 4096 (maxConns raises it when (j) is listed).
	var keys []string
	for _, s := range scs {
		keys = append(keys, s.key)
	}
	o.only = strings.Join(keys, ",")
	base := o
	base.ferryB = "" // each round starts its own pair; setup starts no ferry

	load0 := benchkit.LoadAvg()
	start := time.Now()
	l, err := startLab(ctx, base, map[string]bool{})
	if err != nil {
		return err
	}
	defer l.stop()
	res := map[string][]pairRun{}
	for round := range o.rounds {
		if err := l.pairedRound(ctx, o, scs, round, res); err != nil {
			return fmt.Errorf("%w (logs kept in %s)", err, l.dir)
		}
	}
	os.RemoveAll(l.dir)
	reportPaired(os.Stdout, o, scs, res, load0, benchkit.LoadAvg(), time.Since(start))
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		return os.WriteFile(o.jsonOut, b, 0o644)
	}
	return nil
}

// pairedRound starts both ferries, measures every scenario on them and
// stops them.
func (l *lab) pairedRound(ctx context.Context, o options, scs []scenario, round int, res map[string][]pairRun) error {
	ports, err := benchkit.FreePorts(4)
	if err != nil {
		return err
	}
	var pair [2]*target
	if pair[0], _, err = l.startFerry(ctx, o, "ferry", o.ferryBin, ports[0], ports[1]); err != nil {
		return err
	}
	defer pair[0].proc.Stop()
	if pair[1], _, err = l.startFerry(ctx, o, o.ferryBName, o.ferryB, ports[2], ports[3]); err != nil {
		return err
	}
	defer pair[1].proc.Stop()
	for _, t := range pair {
		if err := reachBoth(ctx, t); err != nil {
			return err
		}
	}
	first := round % 2 // A's wrk first in odd rounds (1, 3, …), B's in even ones
	for _, s := range scs {
		r, err := measurePair(ctx, pair, s, o, first)
		if err != nil {
			return err
		}
		r.Round = round + 1
		res[s.key] = append(res[s.key], r)
		fmt.Fprintf(os.Stderr, "paired round %d %s first %-8s %s %8.0f req/s %6.1f µs/req (user %5.1f, sys %5.1f) | %s %8.0f req/s %6.1f µs/req (user %5.1f, sys %5.1f) | %s÷%s CPU %.3f RPS %.3f | load %.1f | errors %d/%d\n",
			r.Round, s.key, r.First,
			r.A.Name, r.A.RPS, r.A.CPUPerRq(), r.A.UserUs, r.A.SysUs,
			r.B.Name, r.B.RPS, r.B.CPUPerRq(), r.B.UserUs, r.B.SysUs,
			r.B.Name, r.A.Name, ratio(r.B.CPUPerRq(), r.A.CPUPerRq()), ratio(r.B.RPS, r.A.RPS),
			r.Load1, r.A.Errors, r.B.Errors)
	}
	return nil
}

// reachBoth sends t a few requests, as setup does for every proxy: with
// round-robin over two instances, four of them reach both backends, and
// every answer must be a 200 before t is measured.
func reachBoth(ctx context.Context, t *target) error {
	c := &http.Client{Timeout: 5 * time.Second}
	for range 4 {
		req, err := http.NewRequestWithContext(ctx, "GET", t.url+"/warm", nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: warm-up answered %d", t.name, resp.StatusCode)
		}
	}
	return nil
}

// measurePair warms both ferries up with scenario s, then loads both at
// once for o.dur, reading each one's CPU time before either wrk starts and
// after both have ended (an idle ferry spends next to nothing, so the
// moments between do not count).
func measurePair(ctx context.Context, pair [2]*target, s scenario, o options, first int) (pairRun, error) {
	if _, err := loadPair(ctx, pair, s, o, first, pairWarmup); err != nil {
		return pairRun{}, fmt.Errorf("warm-up: %w", err)
	}
	var cpu0 [2]benchkit.CPUTimes
	for i, t := range pair {
		cpu0[i] = benchkit.CPUSplit(t.proc.PID())
	}
	wr, err := loadPair(ctx, pair, s, o, first, o.dur)
	if err != nil {
		return pairRun{}, err
	}
	var sides [2]pairSide
	for i, t := range pair {
		cpu := benchkit.CPUSplit(t.proc.PID()).Sub(cpu0[i])
		if t.proc.Exited() {
			return pairRun{}, fmt.Errorf("%s exited during scenario %s", t.name, s.key)
		}
		n := float64(wr[i].Requests) // > 0: parseWrk fails otherwise
		sides[i] = pairSide{Name: t.name, Requests: wr[i].Requests, Errors: wr[i].Errors, RPS: wr[i].RPS,
			P50: wr[i].P50, P99: wr[i].P99,
			UserUs: float64(cpu.User.Microseconds()) / n, SysUs: float64(cpu.Sys.Microseconds()) / n}
	}
	return pairRun{First: pair[first].name, Load1: benchkit.LoadAvg()[0], A: sides[0], B: sides[1]}, ctx.Err()
}

// loadPair runs wrk against both ferries at the same time for d, pair[first]'s
// started first, and returns their reports in pair's order.
func loadPair(ctx context.Context, pair [2]*target, s scenario, o options, first int, d time.Duration) ([2]wrkResult, error) {
	var res [2]wrkResult
	var waits [2]func() (wrkResult, error)
	for k := range 2 {
		i := (first + k) % 2
		w, err := startWrk(ctx, pair[i].url+s.path, o.threads, o.conns, d, s.headers...)
		if err != nil {
			for _, w := range waits {
				if w != nil {
					w() // reap the one already started
				}
			}
			return res, err
		}
		waits[i] = w
	}
	var errs []error
	for i, w := range waits {
		var err error
		if res[i], err = w(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pair[i].name, err))
		}
	}
	return res, errors.Join(errs...)
}

// reportPaired prints, per scenario, every round's figures and the
// statistics of the per-round ratios B÷A.
func reportPaired(w io.Writer, o options, scs []scenario, res map[string][]pairRun, load0, load1 [3]float64, elapsed time.Duration) {
	a, b := "ferry", o.ferryBName
	fmt.Fprintf(w, "# ferrybench, paired A/B\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "command: %s\n", o.rawCommand)
	fmt.Fprintf(w, "A = %s (%s), B = %s (%s); %d rounds, each starting both afresh, then per scenario a %s warm-up and a %s run "+
		"of two wrk -t%d -c%d at the same time, one per ferry, whose wrk starts first alternating; "+
		"CPU µs/req = the ferry's utime+stime over the run ÷ the requests its wrk counted; %s in all\n",
		a, o.ferryBin, b, o.ferryB, o.rounds, pairWarmup, o.dur, o.threads, o.conns, elapsed.Round(time.Second))
	fmt.Fprintf(w, "load average (1, 5, 15 min): %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end\n\n",
		load0[0], load0[1], load0[2], load1[0], load1[1], load1[2])
	for _, s := range scs {
		runs := res[s.key]
		fmt.Fprintf(w, "## %s\n\n", s.title)
		fmt.Fprintf(w, "| round | first | %s RPS | %s CPU µs/req (user + sys) | %s RPS | %s CPU µs/req (user + sys) | CPU/req %s÷%s | RPS %s÷%s | load 1 min | errors |\n",
			a, a, b, b, b, a, b, a)
		fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, r := range runs {
			fmt.Fprintf(w, "| %d | %s | %.0f | %.1f (%.1f + %.1f) | %.0f | %.1f (%.1f + %.1f) | %.3f | %.3f | %.1f | %d / %d |\n",
				r.Round, r.First, r.A.RPS, r.A.CPUPerRq(), r.A.UserUs, r.A.SysUs,
				r.B.RPS, r.B.CPUPerRq(), r.B.UserUs, r.B.SysUs,
				ratio(r.B.CPUPerRq(), r.A.CPUPerRq()), ratio(r.B.RPS, r.A.RPS), r.Load1, r.A.Errors, r.B.Errors)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "| %s ÷ %s, per round | median | mean | min | max | rounds |\n", b, a)
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
		for _, f := range []struct {
			name string
			of   func(pairSide) float64
		}{
			{"CPU µs/req", pairSide.CPUPerRq},
			{"user CPU µs/req", func(p pairSide) float64 { return p.UserUs }},
			{"system CPU µs/req", func(p pairSide) float64 { return p.SysUs }},
			{"RPS", func(p pairSide) float64 { return p.RPS }},
		} {
			xs := make([]float64, len(runs))
			for i, r := range runs {
				xs[i] = ratio(f.of(r.B), f.of(r.A))
			}
			st := statsOf(xs)
			fmt.Fprintf(w, "| %s | %.3f | %.3f | %.3f | %.3f | %d |\n", f.name, st.Median, st.Mean, st.Min, st.Max, st.N)
		}
		fmt.Fprintln(w)
		if fit, ok := fitEqualRPS(runs); ok {
			fmt.Fprintf(w, "CPU µs/req %s÷%s at equal RPS: **%.3f** (± %.3f, one standard error; %d rounds; "+
				"CPU ratio ∝ RPS ratio^%.2f, residual spread ±%.1f %%)\n\n",
				b, a, fit.Ratio, fit.SE, fit.N, fit.Slope, 100*fit.Resid)
		}
	}
}

// equalRPSFit is the CPU ratio of two ferries at equal throughput.
//
// Side by side, the two ferries share two cores, and in each round one of
// them gets a larger share by chance: its RPS is higher, and its CPU per
// request lower, because each wake-up then finds more requests to serve.
// The per-round CPU ratios thus move with the RPS ratios, which is most of
// their spread. A least-squares line of ln(CPU ratio) on ln(RPS ratio),
// taken at RPS ratio 1, removes that share effect: what is left is the
// difference in the work each does per request.
type equalRPSFit struct {
	N         int
	Ratio, SE float64 // at RPS ratio 1, and its standard error (same scale)
	Slope     float64
	Resid     float64 // the residuals' standard deviation, in ln units
}

func fitEqualRPS(runs []pairRun) (equalRPSFit, bool) {
	var xs, ys []float64
	for _, r := range runs {
		c, q := ratio(r.B.CPUPerRq(), r.A.CPUPerRq()), ratio(r.B.RPS, r.A.RPS)
		if c > 0 && q > 0 {
			xs, ys = append(xs, math.Log(q)), append(ys, math.Log(c))
		}
	}
	n := float64(len(xs))
	if len(xs) < 4 {
		return equalRPSFit{}, false
	}
	var mx, my float64
	for i := range xs {
		mx, my = mx+xs[i], my+ys[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return equalRPSFit{}, false
	}
	slope := sxy / sxx
	icept := my - slope*mx
	var rss float64
	for i := range xs {
		d := ys[i] - (icept + slope*xs[i])
		rss += d * d
	}
	resid := math.Sqrt(rss / (n - 2))
	se := resid * math.Sqrt(1/n+mx*mx/sxx)
	ratio := math.Exp(icept)
	return equalRPSFit{N: len(xs), Ratio: ratio, SE: ratio * se, Slope: slope, Resid: resid}, true
}

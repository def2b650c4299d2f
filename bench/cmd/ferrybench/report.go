package main

import (
	"fmt"
	"io"
	"time"
)

// report prints one markdown table per scenario: medians over the rounds,
// min–max in brackets, and the ratios to direct and to nginx.
func report(w io.Writer, o options, scs []scenario, names []string, res map[string]map[string][]run, resetOK bool, elapsed time.Duration) {
	fmt.Fprintf(w, "# ferrybench\n\nmachine: %s\n", machine())
	fmt.Fprintf(w, "command: %s\n", o.rawCommand)
	fmt.Fprintf(w, "%d alternating rounds of %s per target and scenario; wrk -t%d -c%d; (d) %d req/s offered; %s in all\n\n",
		o.rounds, o.dur, o.threads, o.conns, o.rate, elapsed.Round(time.Second))
	rps := func(r run) float64 { return r.RPS }
	p50 := func(r run) float64 { return ms(r.P50) }
	p99 := func(r run) float64 { return ms(r.P99) }
	p999 := func(r run) float64 { return ms(r.P999) }
	cpu := func(r run) float64 { return r.CPUPerRq }
	rss := func(r run) float64 { return mib(r.PeakKiB) }
	errs := func(r run) float64 { return float64(r.Errors) }
	for _, s := range scs {
		fmt.Fprintf(w, "## %s\n\n", s.title)
		if s.conns {
			reportConns(w, o, names, res[s.key])
			continue
		}
		if s.rate {
			fmt.Fprintln(w, "| target | req/s done | p50 ms | p99 ms [min–max] | p99.9 ms | p99 × direct | p99 × nginx | CPU µs/req | CPU × nginx | peak RSS MiB | errors |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		} else {
			fmt.Fprintln(w, "| target | RPS [min–max] | × direct | × nginx | p50 ms | p99 ms [min–max] | CPU µs/req [min–max] | CPU × nginx | peak RSS MiB | errors |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		}
		byName := res[s.key]
		ratio := func(name, base string, f func(run) float64) string {
			b := median(byName[base], f)
			if b == 0 || len(byName[base]) == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", median(byName[name], f)/b)
		}
		for _, n := range names {
			runs := byName[n]
			if len(runs) == 0 {
				continue
			}
			cpuCell := fmt.Sprintf("%.1f", median(runs, cpu))
			lo, hi := minMax(runs, cpu)
			cpuCell += fmt.Sprintf(" [%.1f–%.1f]", lo, hi)
			label := n
			if n == "direct" {
				label = "direct (backend's CPU)"
			}
			if s.rate {
				plo, phi := minMax(runs, p99)
				fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f [%.2f–%.2f] | %.2f | %s | %s | %s | %s | %.1f | %.0f |\n",
					label, median(runs, rps), median(runs, p50), median(runs, p99), plo, phi, median(runs, p999),
					ratio(n, "direct", p99), ratio(n, "nginx", p99), cpuCell, ratio(n, "nginx", cpu),
					median(runs, rss), sum(runs, errs))
				continue
			}
			rlo, rhi := minMax(runs, rps)
			plo, phi := minMax(runs, p99)
			fmt.Fprintf(w, "| %s | %.0f [%.0f–%.0f] | %s | %s | %.2f | %.2f [%.2f–%.2f] | %s | %s | %.1f | %.0f |\n",
				label, median(runs, rps), rlo, rhi, ratio(n, "direct", rps), ratio(n, "nginx", rps),
				median(runs, p50), median(runs, p99), plo, phi, cpuCell, ratio(n, "nginx", cpu),
				median(runs, rss), sum(runs, errs))
		}
		fmt.Fprintln(w)
	}
	if !resetOK {
		fmt.Fprintln(w, "note: VmHWM could not be reset between runs; peak RSS is the peak since each process started.")
	}
}

func sum(runs []run, f func(run) float64) float64 {
	var t float64
	for _, r := range runs {
		t += f(r)
	}
	return t
}

// reportConns prints scenario (j)'s table.
func reportConns(w io.Writer, o options, names []string, byName map[string][]run) {
	fmt.Fprintf(w, "%d keep-alive connections opened (one GET each) and left idle 3 s; then %d req/s over them for %s, open loop; then %d of them send a GET at the same instant. RLIMIT_NOFILE %d.\n\n",
		o.idleConns, o.idleRate, o.dur, o.burst, o.fileLimit)
	fmt.Fprintln(w, "RSS per idle connection is from each target's first (j) run: a process keeps memory it once used, so later runs' growth says nothing.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | RSS per idle conn, bytes (first run) | × nginx | RSS with them idle MiB (first run) | rate p99 ms [min–max] | p99 × nginx | burst p99 ms | burst done in ms | peak RSS MiB | errors |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	p99 := func(r run) float64 { return ms(r.P99) }
	ratio := func(name string, f func(run) float64) string {
		b := median(byName["nginx"], f)
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", median(byName[name], f)/b)
	}
	first := func(name string) float64 {
		if runs := byName[name]; len(runs) > 0 {
			return runs[0].PerIdle
		}
		return 0
	}
	perRatio := func(name string) string {
		if b := first("nginx"); b > 0 {
			return fmt.Sprintf("%.2f", first(name)/b)
		}
		return "—"
	}
	for _, n := range names {
		runs := byName[n]
		if len(runs) == 0 {
			continue
		}
		plo, phi := minMax(runs, p99)
		fmt.Fprintf(w, "| %s | %.0f | %s | %.1f | %.2f [%.2f–%.2f] | %s | %.2f | %.0f | %.1f | %.0f |\n",
			n, first(n), perRatio(n), mib(runs[0].RSSIdleKiB),
			median(runs, p99), plo, phi, ratio(n, p99), median(runs, func(r run) float64 { return ms(r.BurstP99) }),
			median(runs, func(r run) float64 { return ms(r.BurstTook) }), median(runs, func(r run) float64 { return mib(r.PeakKiB) }),
			sum(runs, func(r run) float64 { return float64(r.Errors) }))
	}
	fmt.Fprintln(w)
}

package main

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStatsOf(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want ratioStats
	}{
		{nil, ratioStats{}},
		{[]float64{1.1}, ratioStats{N: 1, Median: 1.1, Mean: 1.1, Min: 1.1, Max: 1.1}},
		// Odd count: the middle value, whatever the order.
		{[]float64{1.3, 0.9, 1.0}, ratioStats{N: 3, Median: 1.0, Mean: 3.2 / 3, Min: 0.9, Max: 1.3}},
		// Even count: the mean of the two middle values.
		{[]float64{1.04, 0.96, 1.10, 1.00}, ratioStats{N: 4, Median: 1.02, Mean: 1.025, Min: 0.96, Max: 1.10}},
		// NaNs (a ratio over 0) are left out.
		{[]float64{math.NaN(), 2, 1}, ratioStats{N: 2, Median: 1.5, Mean: 1.5, Min: 1, Max: 2}},
	} {
		got := statsOf(c.in)
		near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
		if got.N != c.want.N || !near(got.Median, c.want.Median) || !near(got.Mean, c.want.Mean) ||
			!near(got.Min, c.want.Min) || !near(got.Max, c.want.Max) {
			t.Errorf("statsOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
	in := []float64{3, 1, 2}
	statsOf(in)
	if !slices.Equal(in, []float64{3, 1, 2}) {
		t.Errorf("statsOf reordered its argument: %v", in)
	}
	if !math.IsNaN(ratio(1, 0)) || ratio(3, 2) != 1.5 {
		t.Error("ratio")
	}
}

func TestPairedScenarios(t *testing.T) {
	keys := func(scs []scenario) string {
		var k string
		for _, s := range scs {
			k += s.key
		}
		return k
	}
	scs, skipped := pairedScenarios("a,b,c,d,e,f,g,j")
	if keys(scs) != "abc" || strings.Join(skipped, ",") != "d,e,f,g,j" {
		t.Errorf("default scenarios: paired %q, skipped %v", keys(scs), skipped)
	}
	if scs, skipped := pairedScenarios("a"); keys(scs) != "a" || len(skipped) != 0 {
		t.Errorf("a: paired %q, skipped %v", keys(scs), skipped)
	}
}

func TestReportPaired(t *testing.T) {
	o := options{ferryBin: "bin/ferry", ferryB: "/tmp/old", ferryBName: "before", rounds: 2, dur: 5 * time.Second, threads: 2, conns: 64}
	side := func(name string, rps, user, sys float64) pairSide {
		return pairSide{Name: name, RPS: rps, Requests: int64(rps * 5), UserUs: user, SysUs: sys}
	}
	res := map[string][]pairRun{"a": {
		{Round: 1, First: "ferry", Load1: 4, A: side("ferry", 10000, 10, 20), B: side("before", 11000, 9, 18)},
		{Round: 2, First: "before", Load1: 5, A: side("ferry", 8000, 12, 24), B: side("before", 8000, 12, 24)},
	}}
	var b bytes.Buffer
	reportPaired(&b, o, scenarios[:1], res, [3]float64{1, 2, 3}, [3]float64{4, 5, 6}, time.Minute)
	out := b.String()
	for _, want := range []string{
		"| 1 | ferry | 10000 | 30.0 (10.0 + 20.0) | 11000 | 27.0 (9.0 + 18.0) | 0.900 | 1.100 | 4.0 | 0 / 0 |",
		"| CPU µs/req | 0.950 | 0.950 | 0.900 | 1.000 | 2 |",
		"| RPS | 1.050 | 1.050 | 1.000 | 1.100 | 2 |",
		"1.00 2.00 3.00 at the start, 4.00 5.00 6.00 at the end",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestFitEqualRPS: rounds whose CPU ratio follows the RPS ratio exactly
// (1.02 × RPS ratio^-0.7) give 1.02 at equal RPS, with no spread; too few
// rounds give no estimate.
func TestFitEqualRPS(t *testing.T) {
	var runs []pairRun
	for i, q := range []float64{0.9, 0.95, 1.0, 1.04, 1.1, 0.97} {
		c := 1.02 * math.Pow(q, -0.7)
		runs = append(runs, pairRun{Round: i + 1,
			A: pairSide{RPS: 10000, UserUs: 10, SysUs: 30},
			B: pairSide{RPS: 10000 * q, UserUs: 10 * c, SysUs: 30 * c}})
	}
	fit, ok := fitEqualRPS(runs)
	if !ok || math.Abs(fit.Ratio-1.02) > 1e-9 || math.Abs(fit.Slope+0.7) > 1e-9 || fit.Resid > 1e-9 || fit.N != 6 {
		t.Errorf("fit = %+v, %v; want ratio 1.02, slope -0.7, no residual, 6 rounds", fit, ok)
	}
	if _, ok := fitEqualRPS(runs[:3]); ok {
		t.Error("an estimate from 3 rounds")
	}
}

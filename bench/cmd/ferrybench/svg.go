package main

import (
	"fmt"
	"html"
	"strings"
)

var colors = map[string]string{"direct": "#9e9e9e", "ferry": "#1f77b4", "ferry-b": "#aec7e8", "nginx": "#2ca02c", "haproxy": "#d62728"}

// chart draws, per scenario, two horizontal bar panels: median RPS and
// median p99 per target, with a whisker from the min to the max over the
// rounds.
func chart(scs []scenario, names []string, res map[string]map[string][]run, o options) string {
	const (
		panelW, labelW, barH, gap, top, titleH = 300, 100, 16, 4, 50, 22
	)
	rowH := titleH + len(names)*(barH+gap) + 24
	width := 2*(labelW+panelW) + 60
	height := top + len(scs)*rowH + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">ferry vs nginx vs HAProxy (medians of %d rounds; whiskers: min–max)</text>`+"\n", o.rounds)
	fmt.Fprintf(&b, `<text x="10" y="36" fill="#555">%s; wrk -t%d -c%d -d%s; (d) %d req/s offered</text>`+"\n",
		html.EscapeString(machine()), o.threads, o.conns, o.dur, o.rate)
	for i, s := range scs {
		y0 := top + i*rowH
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y0+14, html.EscapeString(s.title))
		panels := []struct {
			title string
			f     func(run) float64
		}{
			{"requests/s (higher is better)", func(r run) float64 { return r.RPS }},
			{"p99 latency, ms (lower is better)", func(r run) float64 { return ms(r.P99) }},
		}
		for p, panel := range panels {
			x0 := 10 + p*(labelW+panelW+40)
			var maxV float64
			for _, n := range names {
				_, hi := minMax(res[s.key][n], panel.f)
				maxV = max(maxV, hi)
			}
			if maxV == 0 {
				maxV = 1
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">%s</text>`+"\n", x0+labelW, y0+14, panel.title)
			for j, n := range names {
				runs := res[s.key][n]
				if len(runs) == 0 {
					continue
				}
				y := y0 + titleH + j*(barH+gap)
				med := median(runs, panel.f)
				lo, hi := minMax(runs, panel.f)
				w := int(med / maxV * panelW)
				fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", x0+labelW-6, y+12, n)
				color, ok := colors[n]
				if !ok {
					color = colors["ferry-b"]
				}
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x0+labelW, y, max(w, 1), barH, color)
				xl, xh := x0+labelW+int(lo/maxV*panelW), x0+labelW+int(hi/maxV*panelW)
				fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", xl, y+barH/2, xh, y+barH/2)
				format := "%.0f"
				if p == 1 {
					format = "%.2f"
				}
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#000">`+format+`</text>`+"\n", xh+4, y+12, med)
			}
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

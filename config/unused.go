package config

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
)

// unusedServices warns about each service block that no route names: its
// tuning applies to nothing, which is almost always a typo (service "book"
// while the routes say "books", which then runs on defaults). A warning, not
// an error: a block kept for a route that is commented out for a while is
// legitimate.
func unusedServices(raws []*rawService, cfg *Config) hcl.Diagnostics {
	var diags hcl.Diagnostics
	routed := make(map[string]bool)
	for _, r := range cfg.Routes {
		for _, b := range r.Backends {
			routed[b.Service] = true
		}
	}
	names := make([]string, 0, len(routed))
	for n := range routed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, rs := range raws {
		if routed[rs.Name] {
			continue
		}
		detail := fmt.Sprintf("No route names service %q, so this block tunes nothing.", rs.Name)
		if near := nearest(rs.Name, names); near != "" {
			detail += fmt.Sprintf(" Did you mean %q? A route names it, and it runs with the defaults.", near)
		} else {
			detail += " Add a route with service = " + fmt.Sprintf("%q", rs.Name) + ", or remove the block."
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Service block not used by any route",
			Detail: detail, Subject: rs.NameRange.Ptr()})
	}
	return diags
}

// nearest returns the routed name closest to s when it is a likely typo
// (edit distance at most 2, and less than half of s), else "".
func nearest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD && 2*d < len(s) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

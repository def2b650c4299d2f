package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// rawConfig is every file's content merged: each top-level attribute and
// single block from the one file that sets it, services and routes from all
// files in declaration order, unique by name.
type rawConfig struct {
	Listen          *hcl.Attribute
	Admin           *hcl.Attribute
	ShutdownTimeout *hcl.Attribute
	Pprof           *hcl.Attribute
	FastLane        *hcl.Attribute
	TrustedProxies  *hcl.Attribute

	Consul       *rawConsul
	Log          *rawLog
	Services     []*rawService
	Routes       []*rawRoute
	LocalService *rawLocalService
	Limits       *rawLimits
	Redis        *rawRedis

	// Duplicates, already reported: build still checks their content, so
	// that every error is reported, then drops them.
	extraConsul   []*rawConsul
	extraLog      []*rawLog
	extraServices []*rawService
	extraRoutes   []*rawRoute
	extraLocal    []*rawLocalService
	extraLimits   []*rawLimits
	extraRedis    []*rawRedis
}

// merge combines files (in the order they were read). A top-level attribute
// set in two files, a second consul, log or local_service block, and a
// second service or route with the same name are errors on the later one,
// pointing back at the first.
func merge(files []*rawFile) (*rawConfig, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	out := &rawConfig{}
	var consuls []*rawConsul
	var logs []*rawLog
	var locals []*rawLocalService
	var limits []*rawLimits
	var redises []*rawRedis
	services := make(map[string]*rawService)
	routes := make(map[string]*rawRoute)

	for _, f := range files {
		diags = append(diags, mergeAttr(&out.Listen, f.Listen)...)
		diags = append(diags, mergeAttr(&out.Admin, f.Admin)...)
		diags = append(diags, mergeAttr(&out.ShutdownTimeout, f.ShutdownTimeout)...)
		diags = append(diags, mergeAttr(&out.Pprof, f.Pprof)...)
		diags = append(diags, mergeAttr(&out.FastLane, f.FastLane)...)
		diags = append(diags, mergeAttr(&out.TrustedProxies, f.TrustedProxies)...)
		limits = append(limits, f.Limits...)
		redises = append(redises, f.Redis...)
		consuls = append(consuls, f.Consul...)
		logs = append(logs, f.Log...)
		locals = append(locals, f.LocalService...)

		for _, s := range f.Services {
			if first, ok := services[s.Name]; ok {
				diags = append(diags, problem(s.DefRange, fmt.Sprintf("Duplicate service %q", s.Name),
					fmt.Sprintf("A service may have only one service block; %s.", firstDefinedHere(first.DefRange))))
				out.extraServices = append(out.extraServices, s)
				continue
			}
			services[s.Name] = s
			out.Services = append(out.Services, s)
		}
		for _, r := range f.Routes {
			if first, ok := routes[r.Name]; ok {
				diags = append(diags, problem(r.DefRange, fmt.Sprintf("Duplicate route %q", r.Name),
					fmt.Sprintf("Route names must be unique; %s.", firstDefinedHere(first.DefRange))))
				out.extraRoutes = append(out.extraRoutes, r)
				continue
			}
			routes[r.Name] = r
			out.Routes = append(out.Routes, r)
		}
	}

	var more hcl.Diagnostics
	out.Consul, out.extraConsul, more = onlyOne(consuls, "consul", func(b *rawConsul) hcl.Range { return b.DefRange })
	diags = append(diags, more...)
	out.Log, out.extraLog, more = onlyOne(logs, "log", func(b *rawLog) hcl.Range { return b.DefRange })
	diags = append(diags, more...)
	out.LocalService, out.extraLocal, more = onlyOne(locals, "local_service", func(b *rawLocalService) hcl.Range { return b.DefRange })
	diags = append(diags, more...)
	out.Limits, out.extraLimits, more = onlyOne(limits, "limits", func(b *rawLimits) hcl.Range { return b.DefRange })
	diags = append(diags, more...)
	out.Redis, out.extraRedis, more = onlyOne(redises, "redis", func(b *rawRedis) hcl.Range { return b.DefRange })
	diags = append(diags, more...)
	return out, diags
}

// mergeAttr sets *dst to attr unless another file already set it.
func mergeAttr(dst **hcl.Attribute, attr *hcl.Attribute) hcl.Diagnostics {
	if attr == nil {
		return nil
	}
	if *dst == nil {
		*dst = attr
		return nil
	}
	return hcl.Diagnostics{problem(attr.NameRange, fmt.Sprintf("Duplicate %s attribute", attr.Name),
		fmt.Sprintf("The top-level attribute %s may be set in only one file; %s.", attr.Name, firstDefinedHere((*dst).NameRange)))}
}

// onlyOne returns the first of blocks (or the zero value when there is
// none), the others, and an error for each of the others.
func onlyOne[T any](blocks []T, name string, defRange func(T) hcl.Range) (first T, extra []T, diags hcl.Diagnostics) {
	if len(blocks) == 0 {
		return first, nil, nil
	}
	at := defRange(blocks[0])
	for _, b := range blocks[1:] {
		diags = append(diags, problem(defRange(b), fmt.Sprintf("Duplicate %s block", name),
			fmt.Sprintf("Only one %s block is allowed; %s.", name, firstDefinedHere(at))))
	}
	return blocks[0], blocks[1:], diags
}

package split

import "github.com/ferry-proxy/ferry/config"

// ForRoute returns the picker over route.Backends (in their order) and the
// matcher of route.HeaderConditions.
func ForRoute(route *config.Route) (*Picker, Matcher) {
	weights := make([]int, len(route.Backends))
	for i, b := range route.Backends {
		weights[i] = b.Weight
	}
	conds := make([]Condition, len(route.HeaderConditions))
	for i, c := range route.HeaderConditions {
		conds[i] = Condition{Name: c.Name, Values: c.Values}
	}
	return NewPicker(weights), NewMatcher(conds)
}

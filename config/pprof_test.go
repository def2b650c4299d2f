package config

import "testing"

func TestPprof(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      bool
	}{
		{"default off", "", false},
		{"on", "pprof = true", true},
		{"off", "pprof = false", false},
		{"string converted", `pprof = "true"`, true},
		{"null is the default", "pprof = null", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parse(t, tc.src).Pprof; got != tc.want {
				t.Errorf("got Pprof %v, want %v", got, tc.want)
			}
		})
	}
}

package config

import "testing"

func TestFastLane(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      bool
	}{
		{"default on", "", true},
		{"off", "fast_lane = false", false},
		{"on", "fast_lane = true", true},
		{"null is the default", "fast_lane = null", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parse(t, tc.src).FastLane; got != tc.want {
				t.Errorf("got FastLane %v, want %v", got, tc.want)
			}
		})
	}
}

package discovery

import (
	"testing"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"
)

func TestDecide(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name string
		f    facts
		want verdict
	}{
		{"non-empty is accepted", facts{LeaderKnown: true, LastKnown: true}, accept},
		{"non-empty without leader is accepted", facts{LastKnown: true}, accept},
		{"non-empty after reset is accepted", facts{Reset: true, Recovering: true, LastKnown: true}, accept},
		{"empty from healthy consul replaces non-empty", facts{Empty: true, LeaderKnown: true, LastKnown: true}, accept},
		{"empty first answer is believed", facts{Empty: true, LeaderKnown: true}, accept},
		{"empty without leader is suspect", facts{Empty: true, LastKnown: true}, holdSuspect},
		{"empty without leader is suspect even first", facts{Empty: true}, holdSuspect},
		{"empty without leader is suspect even when last was empty", facts{Empty: true, LastKnown: true, LastEmpty: true}, holdSuspect},
		{"empty without leader while confirming is suspect", facts{Empty: true, Confirming: true, LastKnown: true}, holdSuspect},
		{"empty after reset is tentative", facts{Empty: true, LeaderKnown: true, Reset: true, LastKnown: true}, holdTentative},
		{"empty after outage is tentative", facts{Empty: true, LeaderKnown: true, Recovering: true, LastKnown: true}, holdTentative},
		{"empty after reset, confirmed", facts{Empty: true, LeaderKnown: true, Reset: true, Confirming: true, LastKnown: true}, accept},
		{"empty confirmed without reset", facts{Empty: true, LeaderKnown: true, Confirming: true, Recovering: true, LastKnown: true}, accept},
		{"empty again within the confirm window is held", facts{Empty: true, LeaderKnown: true, Confirming: true, Holding: true, LastKnown: true}, holdTentative},
		{"non-empty within the confirm window is believed", facts{LeaderKnown: true, Confirming: true, Holding: true, LastKnown: true}, accept},
		{"empty without leader within the window is suspect", facts{Empty: true, Confirming: true, Holding: true, LastKnown: true}, holdSuspect},
		{"empty within the window, last set empty too", facts{Empty: true, LeaderKnown: true, Confirming: true, Holding: true, LastKnown: true, LastEmpty: true}, accept},
		{"empty while settling after an outage, a non-empty answer since", facts{Empty: true, LeaderKnown: true, Settling: true, LastKnown: true}, holdTentative},
		{"non-empty while settling is believed", facts{LeaderKnown: true, Settling: true, LastKnown: true}, accept},
		{"empty while settling, its confirm window over", facts{Empty: true, LeaderKnown: true, Settling: true, Confirming: true, LastKnown: true}, accept},
		{"empty while settling, last set empty too", facts{Empty: true, LeaderKnown: true, Settling: true, LastKnown: true, LastEmpty: true}, accept},
		{"empty after reset, last empty: nothing to protect", facts{Empty: true, LeaderKnown: true, Reset: true, LastKnown: true, LastEmpty: true}, accept},
		{"empty after reset, never known: nothing to protect", facts{Empty: true, LeaderKnown: true, Reset: true, LastEmpty: true}, accept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.f); got != tt.want {
				t.Errorf("decide(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

func TestLeaderKnown(t *testing.T) {
	defer goleak.VerifyNone(t)
	tests := []struct {
		name string
		meta api.QueryMeta
		want bool
	}{
		{"blocking-query backend with leader", api.QueryMeta{KnownLeader: true, QueryBackend: api.QueryBackendBlockingQuery}, true},
		{"blocking-query backend without leader", api.QueryMeta{QueryBackend: api.QueryBackendBlockingQuery}, false},
		{"old consul, no backend header, no leader", api.QueryMeta{}, false},
		{"old consul, no backend header, leader", api.QueryMeta{KnownLeader: true}, true},
		// Consul's streaming backend never sets X-Consul-KnownLeader.
		{"streaming backend", api.QueryMeta{QueryBackend: api.QueryBackendStreaming}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := leaderKnown(&tt.meta); got != tt.want {
				t.Errorf("leaderKnown(%+v) = %v, want %v", tt.meta, got, tt.want)
			}
		})
	}
}

func TestPlanWatches(t *testing.T) {
	defer goleak.VerifyNone(t)
	desired, dups := planWatches([]Watch{
		{Service: "a"}, {Service: ""}, {Service: "b", Tag: "v1"}, {Service: "a", Tag: "x"}, {Service: "b", Tag: "v2"},
	})
	want := map[string]Watch{"a": {Service: "a"}, "b": {Service: "b", Tag: "v1"}}
	if len(desired) != len(want) {
		t.Fatalf("desired = %v, want %v", desired, want)
	}
	for k, v := range want {
		if !desired[k].same(v) {
			t.Errorf("desired[%q] = %+v, want %+v", k, desired[k], v)
		}
	}
	if len(dups) != 2 || dups[0] != "a" || dups[1] != "b" {
		t.Errorf("dups = %v, want [a b]", dups)
	}
}

package filter_test

import (
	"fmt"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/filtertest"
)

func TestStats(t *testing.T) {
	var s filter.Stats
	c := s.For("api", "jwt", "missing", "invalid")
	if again := s.For("api", "jwt", "missing", "invalid"); again != c {
		t.Error("For returned new counters for the same route and filter")
	}
	c.Add("missing")
	c.Add("missing")
	c.Add("unknown") // ignored
	s.For("web", "rate_limit", "limited").Add("limited")
	var got []string
	s.Each(func(route, f, reason string, n uint64) {
		got = append(got, fmt.Sprintf("%s/%s/%s=%d", route, f, reason, n))
	})
	want := "[api/jwt/missing=2 api/jwt/invalid=0 web/rate_limit/limited=1]"
	if fmt.Sprint(got) != want {
		t.Errorf("got %v, want %s", got, want)
	}
	s.Forget(map[string]bool{"web": true})
	got = nil
	s.Each(func(route, f, reason string, n uint64) { got = append(got, route) })
	if fmt.Sprint(got) != "[web]" {
		t.Errorf("after Forget: got %v, want [web]", got)
	}
	var nilStats *filter.Stats
	nilStats.For("a", "b", "c").Add("c") // a nil Stats counts nothing, without panicking
}

func TestValues(t *testing.T) {
	r := filtertest.NewRequest("r", "192.0.2.1", "/")
	if filter.Claims(r) != nil || filter.AnsweredBy(r) != "" {
		t.Fatal("a fresh request has claims or an answering filter")
	}
	filter.SetClaims(r, map[string]any{"sub": "u1"})
	filter.MarkAnswered(r, "jwt")
	if filter.Claims(r)["sub"] != "u1" || filter.AnsweredBy(r) != "jwt" {
		t.Errorf("got claims %v and answered by %q", filter.Claims(r), filter.AnsweredBy(r))
	}
}

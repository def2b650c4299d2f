package ratelimit

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/filter/filtertest"
)

func newFilter(c *clock, key, name string, counters *filter.Counters) *Filter {
	b := Bucket{Rate: 2, Per: 10 * time.Second, Burst: 2}
	return New(Options{Bucket: b, Key: key, KeyName: name, Store: NewLocal(b, 100, c.now), Policy: "api", Counters: counters})
}

func TestAnswers(t *testing.T) {
	c := newClock()
	var stats filter.Stats
	counters := stats.For("api", "rate_limit", Reasons...)
	f := newFilter(c, KeyClientIP, "", counters)
	for i, want := range []string{`"api";r=1;t=5`, `"api";r=0;t=10`} {
		r := filtertest.NewRequest("api", "192.0.2.1", "/")
		if a := f.Request(context.Background(), r); a != nil {
			t.Fatalf("request %d: got %d, want it to pass", i, a.Status)
		}
		w := filtertest.NewResponse(200)
		f.Response(r, w)
		if got := w.H.Get("RateLimit"); got != want {
			t.Errorf("request %d: RateLimit got %q, want %q", i, got, want)
		}
		if got := w.H.Get("RateLimit-Policy"); got != `"api";q=2;w=10` {
			t.Errorf("RateLimit-Policy: got %q", got)
		}
	}
	r := filtertest.NewRequest("api", "192.0.2.1", "/")
	a := f.Request(context.Background(), r)
	if a == nil || a.Status != 429 {
		t.Fatalf("third request: got %v, want 429", a)
	}
	for name, want := range map[string]string{"Retry-After": "5", "RateLimit": `"api";r=0;t=5`, "RateLimit-Policy": `"api";q=2;w=10`} {
		if got := filtertest.AnswerHeader(a.Header, name); got != want {
			t.Errorf("429 %s: got %q, want %q", name, got, want)
		}
	}
	if filter.AnsweredBy(r) != "rate_limit" || counters.Get(ReasonLimited) != 1 {
		t.Errorf("answered by %q, limited %d", filter.AnsweredBy(r), counters.Get(ReasonLimited))
	}
	// A response filter never runs on the filter's own answer, but even if
	// it did, a refused decision adds nothing.
	w := filtertest.NewResponse(200)
	f.Response(r, w)
	if len(w.H) != 0 {
		t.Errorf("got %v on a refused request's response", w.H)
	}
	if r2 := filtertest.NewRequest("api", "192.0.2.2", "/"); f.Request(context.Background(), r2) != nil {
		t.Error("another client was limited")
	}
	c.advance(5 * time.Second)
	if f.Request(context.Background(), filtertest.NewRequest("api", "192.0.2.1", "/")) != nil {
		t.Error("after Retry-After: still limited")
	}
}

func TestKeys(t *testing.T) {
	withClaims := func(r *filtertest.Request, claims map[string]any) *filtertest.Request {
		filter.SetClaims(r, claims)
		return r
	}
	for _, tc := range []struct {
		name, key, keyName string
		a, b               *filtertest.Request // b shares a's bucket when same
		same               bool
		unlimited          bool // a is not limited at all
	}{
		{name: "client ip, same", key: KeyClientIP, a: filtertest.NewRequest("r", "10.0.0.1", "/"), b: filtertest.NewRequest("r", "10.0.0.1", "/x"), same: true},
		{name: "client ip, other", key: KeyClientIP, a: filtertest.NewRequest("r", "10.0.0.1", "/"), b: filtertest.NewRequest("r", "10.0.0.2", "/")},
		{name: "route", key: KeyRoute, a: filtertest.NewRequest("r", "10.0.0.1", "/"), b: filtertest.NewRequest("r", "10.0.0.2", "/"), same: true},
		{name: "header, same", key: KeyHeader, keyName: "X-Api-Key",
			a: filtertest.NewRequest("r", "10.0.0.1", "/", "x-api-key", "k1"), b: filtertest.NewRequest("r", "10.0.0.2", "/", "X-Api-Key", "k1"), same: true},
		{name: "header, other", key: KeyHeader, keyName: "X-Api-Key",
			a: filtertest.NewRequest("r", "10.0.0.1", "/", "X-Api-Key", "k1"), b: filtertest.NewRequest("r", "10.0.0.1", "/", "X-Api-Key", "k2")},
		{name: "header absent", key: KeyHeader, keyName: "X-Api-Key", a: filtertest.NewRequest("r", "10.0.0.1", "/"), unlimited: true},
		{name: "claim, same", key: KeyClaim, keyName: "sub",
			a: withClaims(filtertest.NewRequest("r", "10.0.0.1", "/"), map[string]any{"sub": "u1"}),
			b: withClaims(filtertest.NewRequest("r", "10.0.0.2", "/"), map[string]any{"sub": "u1"}), same: true},
		{name: "numeric claim", key: KeyClaim, keyName: "uid",
			a: withClaims(filtertest.NewRequest("r", "10.0.0.1", "/"), map[string]any{"uid": json.Number("7")}),
			b: withClaims(filtertest.NewRequest("r", "10.0.0.1", "/"), map[string]any{"uid": json.Number("8")})},
		{name: "no claims", key: KeyClaim, keyName: "sub", a: filtertest.NewRequest("r", "10.0.0.1", "/"), unlimited: true},
		{name: "object claim", key: KeyClaim, keyName: "sub",
			a: withClaims(filtertest.NewRequest("r", "10.0.0.1", "/"), map[string]any{"sub": map[string]any{}}), unlimited: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(newClock(), tc.key, tc.keyName, nil)
			ctx := context.Background()
			f.Request(ctx, tc.a)
			f.Request(ctx, tc.a)
			limited := f.Request(ctx, tc.a) != nil
			if limited == tc.unlimited {
				t.Fatalf("third request of a: limited %v, want %v", limited, !tc.unlimited)
			}
			if tc.b == nil {
				return
			}
			if got := f.Request(ctx, tc.b) != nil; got != tc.same {
				t.Errorf("b limited: got %v, want %v", got, tc.same)
			}
		})
	}
}

func BenchmarkFilterLocal(b *testing.B) {
	bucket := Bucket{Rate: 1_000_000_000, Per: time.Second, Burst: 1_000_000_000}
	f := New(Options{Bucket: bucket, Key: KeyClientIP, Store: NewLocal(bucket, 100000, nil), Policy: "api"})
	r := filtertest.NewRequest("api", "192.0.2.1", "/")
	w := filtertest.NewResponse(200)
	b.ReportAllocs()
	for b.Loop() {
		if f.Request(context.Background(), r) != nil {
			b.Fatal("limited")
		}
		f.Response(r, w)
		clear(w.H)
	}
}

package cache

import (
	"testing"
	"time"
)

func TestParseCacheControl(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want directives
	}{
		{[]string{"max-age=60"}, directives{maxAge: time.Minute, sMaxAge: -1, swr: -1, sie: -1, maxAgeSeen: true}},
		{[]string{`Max-Age="60", PUBLIC`}, directives{maxAge: time.Minute, sMaxAge: -1, swr: -1, sie: -1, public: true, maxAgeSeen: true}},
		{[]string{"s-maxage=10", "must-revalidate"}, directives{maxAge: -1, sMaxAge: 10 * time.Second, swr: -1, sie: -1, mustRevalidate: true, sMaxSeen: true}},
		{[]string{"proxy-revalidate, no-cache=\"Set-Cookie\", private"}, directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1, mustRevalidate: true, noCache: true, private: true}},
		{[]string{"max-age=60, max-age=120"}, directives{maxAge: 0, sMaxAge: -1, swr: -1, sie: -1, maxAgeSeen: true, malformedFreshnessArg: true}},
		{[]string{"max-age=-1"}, directives{maxAge: 0, sMaxAge: -1, swr: -1, sie: -1, maxAgeSeen: true, malformedFreshnessArg: true}},
		{[]string{"max-age=99999999999"}, directives{maxAge: maxDelta, sMaxAge: -1, swr: -1, sie: -1, maxAgeSeen: true}},
		{[]string{"stale-while-revalidate=30, stale-if-error=x, no-store"}, directives{maxAge: -1, sMaxAge: -1, swr: 30 * time.Second, sie: -1, noStore: true}},
		{[]string{"only-if-cached, must-understand"}, directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1, onlyIfCached: true, mustUnderstand: true}},
		{nil, directives{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}},
	} {
		if got := parseCacheControl(tc.in); got != tc.want {
			t.Errorf("parseCacheControl(%q):\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

// TestCurrentAge follows RFC 9111 §4.2.3 with numbers worked by hand.
func TestCurrentAge(t *testing.T) {
	base := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name string
		f    freshness
		now  time.Time
		want time.Duration
	}{
		{"resident only", freshness{requestTime: base, responseTime: base, date: base}, base.Add(7 * time.Second), 7 * time.Second},
		{"Age plus response delay", freshness{requestTime: base, responseTime: base.Add(2 * time.Second), date: base.Add(2 * time.Second), ageValue: 30 * time.Second},
			base.Add(2 * time.Second), 32 * time.Second},
		{"apparent age wins", freshness{requestTime: base, responseTime: base, date: base.Add(-100 * time.Second), ageValue: 10 * time.Second},
			base.Add(time.Second), 101 * time.Second},
		{"Date in the future", freshness{requestTime: base, responseTime: base, date: base.Add(time.Hour)}, base, 0},
	} {
		if got := tc.f.currentAge(tc.now); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLifetime(t *testing.T) {
	date := time.Unix(1_000_000, 0)
	exp := date.Add(90 * time.Second).UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
	for _, tc := range []struct {
		name     string
		cc       string
		expires  string
		want     time.Duration
		explicit bool
	}{
		{"s-maxage first", "s-maxage=5, max-age=50", exp, 5 * time.Second, true},
		{"max-age over Expires", "max-age=50", exp, 50 * time.Second, true},
		{"Expires minus Date", "", exp, 90 * time.Second, true},
		{"Expires in the past", "", "Thu, 01 Jan 1970 00:00:00 GMT", 0, true},
		{"invalid Expires", "", "0", 0, true},
		{"nothing", "public", "", 0, false},
	} {
		got, explicit := lifetime(parseCacheControl([]string{tc.cc}), tc.expires, date)
		if got != tc.want || explicit != tc.explicit {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, got, explicit, tc.want, tc.explicit)
		}
	}
}

func TestEtagMatch(t *testing.T) {
	for _, tc := range []struct {
		inm, etag string
		want      bool
	}{
		{`"a"`, `"a"`, true},
		{`W/"a"`, `"a"`, true},
		{`"a"`, `W/"a"`, true},
		{`"b", "a"`, `"a"`, true},
		{`*`, `"a"`, true},
		{`"b"`, `"a"`, false},
		{`"a"`, ``, false},
	} {
		if got := etagMatch(tc.inm, tc.etag); got != tc.want {
			t.Errorf("etagMatch(%s, %s): got %v", tc.inm, tc.etag, got)
		}
	}
}

func TestVaryNames(t *testing.T) {
	names, star := varyNames([]string{"Accept-Encoding, origin", "ACCEPT-ENCODING"})
	if star || len(names) != 2 || names[0] != "accept-encoding" || names[1] != "origin" {
		t.Errorf("got %q %v", names, star)
	}
	if _, star := varyNames([]string{"Origin, *"}); !star {
		t.Error("* not seen")
	}
}

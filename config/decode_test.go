package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		rule    durationRule
		want    time.Duration
		wantErr string // substring of the error; "" for none
	}{
		{name: "seconds", in: "5s", rule: positive, want: 5 * time.Second},
		{name: "compound", in: "1h2m3.5s", rule: positive, want: time.Hour + 2*time.Minute + 3500*time.Millisecond},
		{name: "milliseconds", in: "250ms", rule: positive, want: 250 * time.Millisecond},
		{name: "microseconds", in: "10us", rule: positive, want: 10 * time.Microsecond},
		{name: "micro sign", in: "10µs", rule: positive, want: 10 * time.Microsecond},
		{name: "explicit plus", in: "+3s", rule: positive, want: 3 * time.Second},
		{name: "zero allowed", in: "0s", rule: nonNegative, want: 0},
		{name: "bare zero allowed", in: "0", rule: nonNegative, want: 0},
		{name: "zero refused", in: "0s", rule: positive, wantErr: "greater than zero"},
		{name: "negative", in: "-1s", rule: nonNegative, wantErr: "must not be negative"},
		{name: "no unit", in: "30", rule: positive, wantErr: "a number and a unit"},
		{name: "unknown unit", in: "3d", rule: positive, wantErr: "a number and a unit"},
		{name: "empty", in: "", rule: nonNegative, wantErr: "a number and a unit"},
		{name: "space", in: "5 s", rule: positive, wantErr: "a number and a unit"},
		{name: "overflow", in: "9999999999h", rule: positive, wantErr: "a number and a unit"},
		{name: "at max", in: "10m", rule: durationRule{max: 10 * time.Minute}, want: 10 * time.Minute},
		{name: "over max", in: "601s", rule: durationRule{max: 10 * time.Minute}, wantErr: "at most 10m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDuration(tc.in, tc.rule)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got error %q, want %v", err, tc.want)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %v, %v; want an error containing %q", got, err, tc.wantErr)
			case tc.wantErr == "" && got != tc.want:
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPathPrefix(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" for an error
	}{
		{"/", "/"},
		{"/api", "/api"},
		{"/api/", "/api"},
		{"/api/v1/", "/api/v1"},
		{"/a-b_c.d~e", "/a-b_c.d~e"},
		{"/.well-known", "/.well-known"},
		{"/a..b", "/a..b"},
		{"/...", "/..."},
		{"", ""},
		{"api", ""},
		{"//", ""},
		{"/a//b", ""},
		{"/a/.", ""},
		{"/a/./", ""},
		{"/..", ""},
		{"/a?", ""},
		{"/a#", ""},
		{"/a%2F", ""},
		{"/a\x00", ""},
		{"/a\x7f", ""},
		{"/a b", ""},
		{"/a\u00a0b", ""},
		{"/\xff", ""},
		{"/a\"b", ""},
		{"/a<b>", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := pathPrefix(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Errorf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRouteHost(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		wantErr  bool
	}{
		{in: "", want: ""},
		{in: "example.com", want: "example.com"},
		{in: "EXAMPLE.com.", want: "example.com"},
		{in: "my_host-1", want: "my_host-1"},
		{in: "192.168.0.1", want: "192.168.0.1"},
		{in: "[::1]", want: "::1"},
		{in: "2001:DB8:0:0::1", want: "2001:db8::1"},
		{in: "example.com:80", wantErr: true},
		{in: "[::1]:80", wantErr: true},
		{in: "fe80::1%eth0", wantErr: true},
		{in: "example.com/", wantErr: true},
		{in: " example.com", wantErr: true},
		{in: "*.example.com", wantErr: true},
		{in: ".example.com", wantErr: true},
		{in: ".", wantErr: true},
		{in: "bücher.de", wantErr: true},
		{in: "user@example.com", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := routeHost(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{in: "127.0.0.1:8080"},
		{in: ":8080"},
		{in: "localhost:0"},
		{in: "[::1]:9901"},
		{in: "0.0.0.0:65535"},
		{in: "", wantErr: true},
		{in: "127.0.0.1", wantErr: true},
		{in: "127.0.0.1:", wantErr: true},
		{in: "127.0.0.1:-1", wantErr: true},
		{in: "127.0.0.1:65536", wantErr: true},
		{in: "::1:80", wantErr: true},
		{in: "host name:80", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := hostPort("listen address")(tc.in)
			if (err != nil) != tc.wantErr {
				t.Errorf("got error %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestConsulName(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{in: "user"},
		{in: "User_API-v2.internal"},
		{in: "", wantErr: true},
		{in: "a b", wantErr: true},
		{in: "a/b", wantErr: true},
		{in: "ünï", wantErr: true},
		{in: "a:b", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if err := consulName("service")(tc.in); (err != nil) != tc.wantErr {
				t.Errorf("got error %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestMetaPair(t *testing.T) {
	for _, tc := range []struct {
		name, k, v string
		wantErr    bool
	}{
		{name: "plain", k: "team", v: "orders"},
		{name: "dash and underscore", k: "a-b_C9", v: ""},
		{name: "empty key", k: "", v: "x", wantErr: true},
		{name: "long key", k: strings.Repeat("k", 129), v: "x", wantErr: true},
		{name: "reserved", k: "consul-version", v: "x", wantErr: true},
		{name: "dot", k: "a.b", v: "x", wantErr: true},
		{name: "non-ASCII letter", k: "ä", v: "x", wantErr: true},
		{name: "long value", k: "k", v: strings.Repeat("v", 513), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := metaPair(tc.k, tc.v); (err != nil) != tc.wantErr {
				t.Errorf("got error %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestMetaPairLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("local_service {\n  name = \"a\"\n  port = 1\n  meta = {\n")
	for i := 0; i < 65; i++ {
		b.WriteString("    k" + strings.Repeat("x", i) + " = \"v\"\n")
	}
	b.WriteString("  }\n}\n")
	checkErrors(t, errorCase{src: b.String(), want: []string{"t.hcl:4,10: Invalid meta"}, detail: "at most 64 meta pairs, not 65"})
}

func TestQuoteList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"a"}, `"a"`},
		{[]string{"a", "b"}, `"a" or "b"`},
		{[]string{"a", "b", "c"}, `"a", "b" or "c"`},
	} {
		if got := quoteList(tc.in); got != tc.want {
			t.Errorf("quoteList(%q): got %s, want %s", tc.in, got, tc.want)
		}
	}
}

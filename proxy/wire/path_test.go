package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{name: "root", in: "/", want: "/"},
		{name: "empty is root", in: "", want: "/"},
		{name: "plain", in: "/api/user/42", want: "/api/user/42"},
		{name: "trailing slash kept", in: "/api/user/", want: "/api/user/"},
		{name: "case kept", in: "/API/User", want: "/API/User"},
		{name: "sub-delims kept raw", in: "/a;b=c/d:e@f!$&'()*+,", want: "/a;b=c/d:e@f!$&'()*+,"},
		{name: "dot segment", in: "/a/./b", want: "/a/b"},
		{name: "dot-dot segment", in: "/a/b/../c", want: "/a/c"},
		{name: "dot-dot at end keeps a slash", in: "/a/b/..", want: "/a/"},
		{name: "dot at end keeps a slash", in: "/a/b/.", want: "/a/b/"},
		{name: "dot-dot above root", in: "/../../etc/passwd", want: "/etc/passwd"},
		{name: "dot-dot to root", in: "/a/..", want: "/"},
		{name: "only dot-dot", in: "/..", want: "/"},
		{name: "encoded dots", in: "/a/%2e%2E/b", want: "/b"},
		{name: "encoded single dot", in: "/a/%2E/b", want: "/a/b"},
		{name: "mixed encoded dot-dot", in: "/api/user/.%2e/admin", want: "/api/admin"},
		{name: "dots inside a name are not segments", in: "/a/..b/c.", want: "/a/..b/c."},
		{name: "repeated slashes merged", in: "//api///user//", want: "/api/user/"},
		{name: "slashes and dots", in: "/a//..//b", want: "/b"},
		{name: "unreserved escapes decoded", in: "/%7Euser/%41%62%2D%5f%30", want: "/~user/Ab-_0"},
		{name: "reserved escape upper-cased", in: "/a%3fb%3Ac", want: "/a%3Fb%3Ac"},
		{name: "space stays encoded", in: "/a%20b", want: "/a%20b"},
		{name: "percent stays encoded", in: "/100%25", want: "/100%25"},
		{name: "utf-8 escapes upper-cased", in: "/caf%c3%a9", want: "/caf%C3%A9"},
		{name: "raw non-ASCII encoded", in: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		{name: "raw disallowed chars encoded", in: "/a b\"<>[]", want: "/a%20b%22%3C%3E%5B%5D"},
		{name: "encoded slash rejected", in: "/a%2Fb", bad: true},
		{name: "encoded slash lower-case rejected", in: "/a%2fb", bad: true},
		{name: "encoded backslash rejected", in: "/a%5cb", bad: true},
		{name: "backslash rejected", in: "/a\\..\\b", bad: true},
		{name: "NUL rejected", in: "/a\x00b", bad: true},
		{name: "encoded NUL rejected", in: "/a%00b", bad: true},
		{name: "newline rejected", in: "/a\nb", bad: true},
		{name: "encoded CR rejected", in: "/a%0db", bad: true},
		{name: "DEL rejected", in: "/a%7Fb", bad: true},
		{name: "malformed escape rejected", in: "/a%zzb", bad: true},
		{name: "truncated escape rejected", in: "/a%2", bad: true},
		{name: "relative rejected", in: "a/b", bad: true},
		{name: "asterisk rejected", in: "*", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalPath(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("CanonicalPath(%q) = %q, want an error", tt.in, got)
				}
				if !errors.Is(err, ErrBadPath) {
					t.Fatalf("CanonicalPath(%q): error %v does not wrap ErrBadPath", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CanonicalPath(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("CanonicalPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Canonical is a fixed point.
			if again, err := CanonicalPath(got); err != nil || again != got {
				t.Fatalf("CanonicalPath(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestCanonicalPathNoAllocWhenCanonical(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CanonicalPath("/api/user/42/"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("got %v allocs, want 0", allocs)
	}
}

func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2E/x", "//a//b/", "/a%2Fb", "/caf%c3%a9", "/a/./b/.", "/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := CanonicalPath(in)
		if err != nil {
			return
		}
		if got == "" || got[0] != '/' {
			t.Fatalf("CanonicalPath(%q) = %q: not absolute", in, got)
		}
		for _, bad := range []string{"//", "/./", "/../", "\\", "%2F", "%5C"} {
			if strings.Contains(got, bad) {
				t.Fatalf("CanonicalPath(%q) = %q: contains %q", in, got, bad)
			}
		}
		if strings.HasSuffix(got, "/.") || strings.HasSuffix(got, "/..") {
			t.Fatalf("CanonicalPath(%q) = %q: ends in a dot segment", in, got)
		}
		if again, err := CanonicalPath(got); err != nil || again != got {
			t.Fatalf("CanonicalPath(%q) = %q, but CanonicalPath(%q) = %q, %v", in, got, got, again, err)
		}
	})
}

func BenchmarkCanonicalPath(b *testing.B) {
	for _, p := range []string{"/api/user/42", "/api/./user/%2e%2e/user/42"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				CanonicalPath(p)
			}
		})
	}
}

package route

import (
	"strings"
	"testing"

	"github.com/ferry-proxy/ferry/health"
)

func matchTable(t testing.TB) *Table {
	t.Helper()
	b := NewBuilder(health.NewRegistry(), nil)
	t.Cleanup(b.Close)
	return b.Build([]RouteSpec{
		{Name: "root", PathPrefix: "/", Service: "web"},
		{Name: "api", PathPrefix: "/api", Service: "api"},
		{Name: "users", PathPrefix: "/api/user", Service: "user"},
		{Name: "user-admin", PathPrefix: "/api/user/admin", Service: "admin"},
		{Name: "shop-users", Host: "shop.example.com", PathPrefix: "/api/user", Service: "shop-user"},
		{Name: "shop-static", Host: "shop.example.com", PathPrefix: "/static", Service: "shop-static"},
		{Name: "only-host", Host: "only.example.com", PathPrefix: "/x", Service: "x"},
		{Name: "v6", Host: "::1", PathPrefix: "/v6", Service: "v6"},
	}, nil, nil)
}

func TestMatch(t *testing.T) {
	tab := matchTable(t)
	tests := []struct {
		name, host, path, want string // want "" = no route
	}{
		{"exact prefix", "", "/api/user", "users"},
		{"prefix with trailing slash", "", "/api/user/", "users"},
		{"below prefix", "", "/api/user/42", "users"},
		{"not a segment boundary", "", "/api/users", "api"},
		{"longest prefix wins", "", "/api/user/admin/x", "user-admin"},
		{"longer name is not the deeper prefix", "", "/api/user/administrator", "users"},
		{"shorter prefix", "", "/api/order", "api"},
		{"catch-all", "", "/elsewhere/deep/path", "root"},
		{"root path", "", "/", "root"},
		{"case matters in paths", "", "/API/user", "root"},
		{"host route wins", "shop.example.com", "/api/user/42", "shop-users"},
		{"host is case-insensitive", "Shop.Example.COM", "/api/user", "shop-users"},
		{"host port stripped", "shop.example.com:8080", "/static/app.js", "shop-static"},
		{"host trailing dot stripped", "shop.example.com.", "/static/", "shop-static"},
		{"host falls back to any-host routes", "shop.example.com", "/api/order", "api"},
		{"host route shorter than any-host route still wins", "shop.example.com", "/api/user/admin", "shop-users"},
		{"unknown host uses any-host routes", "other.example.com", "/api/user/1", "users"},
		{"host-only route", "only.example.com:80", "/x/y", "only-host"},
		{"host-only route not for other hosts", "", "/x/y", "root"},
		{"IPv6 host with port", "[::1]:8080", "/v6/a", "v6"},
		{"IPv6 host without port", "[::1]", "/v6", "v6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tab.Match(tt.host, tt.path)
			got := ""
			if r != nil {
				got = r.Spec().Name
			}
			if got != tt.want {
				t.Fatalf("Match(%q, %q) = %q, want %q", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestMatchWithoutCatchAll(t *testing.T) {
	b := NewBuilder(health.NewRegistry(), nil)
	defer b.Close()
	tab := b.Build([]RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil, nil)
	for _, p := range []string{"/", "/api", "/api/users", "/apix/user"} {
		if r := tab.Match("", p); r != nil {
			t.Errorf("Match(%q) = %q, want no route", p, r.Spec().Name)
		}
	}
	if r := tab.Match("", "/api/user/1"); r == nil || r.Service().Name() != "user" {
		t.Errorf("Match(/api/user/1) = %v, want route users", r)
	}
}

func TestMatchEmptyTable(t *testing.T) {
	if r := EmptyTable().Match("x", "/"); r != nil {
		t.Fatalf("empty table matched %v", r)
	}
}

func TestMatchNoAlloc(t *testing.T) {
	tab := matchTable(t)
	allocs := testing.AllocsPerRun(100, func() {
		tab.Match("Shop.Example.com:8080", "/api/user/42/profile")
		tab.Match("other", "/static/a/b/c/d")
	})
	if allocs != 0 {
		t.Fatalf("Match: got %v allocs, want 0", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	tab := matchTable(b)
	cases := []struct{ name, host, path string }{
		{"any-host", "localhost:8080", "/api/user/42"},
		{"host", "shop.example.com", "/api/user/42"},
		{"upper-case-host", "Shop.Example.com:443", "/static/js/app.js"},
		{"deep-catch-all", "", "/a/b/c/d/e/f/g/h"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tab.Match(c.host, c.path) == nil {
					b.Fatal("no route")
				}
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	tab := matchTable(f)
	for _, s := range [][2]string{{"", "/api/user/42"}, {"SHOP.example.com:1", "/static/"}, {"[::1]", "/v6"}, {"x", "/"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		r := tab.Match(host, path)
		if r == nil {
			return
		}
		p := r.Spec().PathPrefix
		if p != "/" && path != p && !strings.HasPrefix(path, p+"/") {
			t.Fatalf("Match(%q, %q) = route with prefix %q: not on a segment boundary", host, path, p)
		}
		if h := r.Spec().Host; h != "" && !strings.EqualFold(hostOnly(host), h) {
			t.Fatalf("Match(%q, %q) = route for host %q", host, path, h)
		}
	})
}

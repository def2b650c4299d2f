package config

import (
	"strings"
	"testing"
)

func TestUnusedServiceBlockWarns(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // lines of the diagnostics; none when empty
	}{
		{"typo", `
service "book" {
  retries = 1
}
route "books" {
  path_prefix = "/books"
  service     = "books"
}
`, []string{`t.hcl:2,9: warning: Service block not used by any route: No route names service "book", so this block tunes nothing. Did you mean "books"? A route names it, and it runs with the defaults.`}},
		{"no near name", `
service "payments" {}
route "books" {
  path_prefix = "/books"
  service     = "books"
}
`, []string{`t.hcl:2,9: warning: Service block not used by any route: No route names service "payments", so this block tunes nothing. Add a route with service = "payments", or remove the block.`}},
		{"used", `
service "books" {}
route "books" {
  path_prefix = "/books"
  service     = "books"
}
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Parse("t.hcl", []byte(tt.src))
			if cfg == nil {
				t.Fatalf("a warning must not reject the configuration: %v", diags)
			}
			got := strings.TrimSpace(diags.Error())
			if want := strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"book", "books", 1}, {"user", "users", 1}, {"kitten", "sitting", 3}, {"abc", "", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q): got %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

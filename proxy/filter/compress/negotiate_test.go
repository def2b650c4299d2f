package compress

import "testing"

func TestChoose(t *testing.T) {
	all := []string{"zstd", "br", "gzip"}
	for _, tc := range []struct {
		name   string
		accept []string
		prefs  []string
		want   string
	}{
		{"no header", nil, all, ""},
		{"empty header", []string{""}, all, ""},
		{"gzip only", []string{"gzip"}, all, "gzip"},
		{"route order breaks ties", []string{"gzip, br, zstd"}, all, "zstd"},
		{"route order among two", []string{"gzip, br"}, all, "br"},
		{"route prefers gzip", []string{"gzip, br, zstd"}, []string{"gzip", "br"}, "gzip"},
		{"higher q wins over order", []string{"zstd;q=0.5, gzip;q=0.9"}, all, "gzip"},
		{"q=0 refuses", []string{"zstd;q=0, br;q=0, gzip"}, all, "gzip"},
		{"all refused", []string{"gzip;q=0"}, all, ""},
		{"star", []string{"*"}, all, "zstd"},
		{"star with refusal", []string{"*, zstd;q=0"}, all, "br"},
		{"star refused", []string{"*;q=0"}, all, ""},
		{"named beats star", []string{"*;q=0.1, gzip;q=0.5"}, all, "gzip"},
		{"identity only", []string{"identity"}, all, ""},
		{"case and spaces", []string{" GZIP ; Q=1 "}, all, "gzip"},
		{"x-gzip", []string{"x-gzip"}, all, "gzip"},
		{"several fields", []string{"deflate", "br;q=0.8"}, all, "br"},
		{"malformed q ignored", []string{"zstd;q=x, gzip"}, all, "gzip"},
		{"q above 1 ignored", []string{"zstd;q=2, gzip;q=0.1"}, all, "gzip"},
		{"unknown coding", []string{"compress, deflate"}, all, ""},
		{"three decimals", []string{"br;q=0.001, gzip;q=0.002"}, all, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := choose(tc.accept, tc.prefs); got != tc.want {
				t.Errorf("choose(%q, %q): got %q, want %q", tc.accept, tc.prefs, got, tc.want)
			}
		})
	}
}

func TestTypeMatcher(t *testing.T) {
	m := newTypeMatcher([]string{"text/*", "application/json", "image/svg+xml"})
	for ct, want := range map[string]bool{
		"text/html":                       true,
		"text/plain; charset=utf-8":       true,
		"TEXT/CSS":                        true,
		"application/json":                true,
		"application/json; charset=utf-8": true,
		"application/jsonx":               false,
		"image/svg+xml":                   true,
		"image/png":                       false,
		"":                                false,
		"text":                            false,
		"application/javascript":          false,
	} {
		if got := m.match(mediaType(ct)); got != want {
			t.Errorf("match(%q): got %v, want %v", ct, got, want)
		}
	}
}

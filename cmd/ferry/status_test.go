package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestStatusPageSelfContained: the embedded status page loads nothing from
// elsewhere — no external script, style sheet, font, image or frame — so it
// works without Internet access and leaks nothing to a CDN. Its only URL is
// the SVG namespace, an identifier that is never fetched. (The admin API
// also sends a Content-Security-Policy with default-src 'none'; the
// Chromium tests load it under that policy.)
func TestStatusPageSelfContained(t *testing.T) {
	page := string(statusPage)
	for _, bad := range []string{"<link", "<iframe", "<img", "@import", "url(", " src=", " href=", "//cdn", "XMLHttpRequest"} {
		if strings.Contains(page, bad) {
			t.Errorf("status.html contains %q: it must not load anything from elsewhere", bad)
		}
	}
	for _, u := range regexp.MustCompile(`https?://[^"' )]+`).FindAllString(page, -1) {
		if u != "http://www.w3.org/2000/svg" {
			t.Errorf("status.html names the URL %s", u)
		}
	}
	// Every fetch is a relative path of the admin API on the same origin.
	for _, m := range regexp.MustCompile(`fetch\(([^,)]+)`).FindAllStringSubmatch(page, -1) {
		if arg := strings.TrimSpace(m[1]); strings.HasPrefix(arg, `"http`) || strings.HasPrefix(arg, `"//`) {
			t.Errorf("status.html fetches %s, not a path of its own origin", arg)
		}
	}
}

package proxy

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseHead checks that a head the fast lane accepts is one net/http
// reads the same way: method, escaped path, query, Host and body length.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("GET /api/user/1?x=1 HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"))
	f.Add([]byte("POST /p HTTP/1.1\r\nHost: a:80\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"))
	f.Add([]byte("GET /%41%2f;x?q=%zz HTTP/1.1\r\nHost: [::1]:8\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h reqHead
		if parseHead(b, &h, 100, 64<<10) != headFast {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(b))))
		if err != nil {
			t.Fatalf("fast lane accepted a head net/http refuses (%v): %q", err, b)
		}
		if r.Method != h.method || r.URL.EscapedPath() != string(h.path) || r.URL.RawQuery != string(h.query) ||
			r.URL.ForceQuery != (h.hasQuery && len(h.query) == 0) || r.Host != string(h.host) ||
			r.ContentLength != h.contentLength && !(r.ContentLength == -1 && h.contentLength == 0) ||
			r.Close != h.close {
			t.Fatalf("fast lane and net/http disagree on %q:\nfast: %s %q %q %q cl=%d close=%v\nhttp: %s %q %q %q cl=%d close=%v",
				b, h.method, h.path, h.query, h.host, h.contentLength, h.close,
				r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Host, r.ContentLength, r.Close)
		}
		if len(r.TransferEncoding) > 0 {
			t.Fatalf("fast lane accepted a transfer coding: %q", b)
		}
		if h.nfields > maxFastFields || h.size > len(b) {
			t.Fatalf("out of range: %d fields, head of %d bytes in %d", h.nfields, h.size, len(b))
		}
	})
}

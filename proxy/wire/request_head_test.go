package wire

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
		var h RequestHead
		if ParseRequestHead(b, &h, 100, 64<<10) != HeadFast {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(b))))
		if err != nil {
			t.Fatalf("fast lane accepted a head net/http refuses (%v): %q", err, b)
		}
		if r.Method != h.Method || r.URL.EscapedPath() != string(h.Path) || r.URL.RawQuery != string(h.Query) ||
			r.URL.ForceQuery != (h.HasQuery && len(h.Query) == 0) || r.Host != string(h.Host) ||
			r.ContentLength != h.ContentLength && !(r.ContentLength == -1 && h.ContentLength == 0) ||
			r.Close != h.Close {
			t.Fatalf("fast lane and net/http disagree on %q:\nfast: %s %q %q %q cl=%d close=%v\nhttp: %s %q %q %q cl=%d close=%v",
				b, h.Method, h.Path, h.Query, h.Host, h.ContentLength, h.Close,
				r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Host, r.ContentLength, r.Close)
		}
		if len(r.TransferEncoding) > 0 {
			t.Fatalf("fast lane accepted a transfer coding: %q", b)
		}
		if h.NFields > maxFastFields || h.Size > len(b) {
			t.Fatalf("out of range: %d fields, head of %d bytes in %d", h.NFields, h.Size, len(b))
		}
	})
}

package wire

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseResponse checks that an upstream head the core accepts is one
// net/http's client reads the same way: status, chunked or not, the body's
// length, and whether the connection closes after it.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\nConnection: close, X-A\nX-A: 1\n\n"))
	f.Add([]byte("HTTP/1.0 204  No Content\r\nConnection: keep-alive\r\n\r\n"))
	f.Add([]byte("HTTP/2.0  301 Moved\r\nLocation: /x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r ResponseHead
		complete, err := ParseResponseHead(b, &r)
		if err != nil || !complete {
			return
		}
		if r.Size > len(b) || r.NFields > maxRespFields {
			t.Fatalf("out of range: head of %d bytes in %d, %d fields", r.Size, len(b), r.NFields)
		}
		resp, herr := http.ReadResponse(bufio.NewReader(strings.NewReader(string(b[:r.Size]))), &http.Request{Method: "GET"})
		if herr != nil {
			t.Fatalf("the core accepted a head net/http refuses (%v): %q", herr, b[:r.Size])
		}
		chunked := len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked"
		if resp.StatusCode != r.Status || chunked != r.Chunked && r.Status >= 200 && r.Status != 204 && r.Status != 304 {
			t.Fatalf("disagree on %q: core status %d chunked %v, net/http %d %v", b[:r.Size], r.Status, r.Chunked, resp.StatusCode, chunked)
		}
		bodied := r.Status >= 200 && r.Status != 204 && r.Status != 304
		if bodied && !r.Chunked && r.ContentLength >= 0 && resp.ContentLength != r.ContentLength {
			t.Fatalf("disagree on the length of %q: core %d, net/http %d", b[:r.Size], r.ContentLength, resp.ContentLength)
		}
		if bodied && resp.Close && !r.Close && (r.Chunked || r.ContentLength >= 0) { // else read until close
			t.Fatalf("net/http closes after %q, the core would reuse the connection", b[:r.Size])
		}
	})
}

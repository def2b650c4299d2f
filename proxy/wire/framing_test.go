package wire

import (
	"strings"
	"testing"
)

// smuggled is a second request that must be refused wherever it follows.
const smuggled = "GET /s HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"

func TestTracker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		seq    int64
		reason uint8
	}{
		{"plain", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, RefuseNone},
		{"CL and TE", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 1, RefuseCLAndTE},
		{"TE then CL, lower case", "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n", 1, RefuseCLAndTE},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 1, RefuseTEOnHTTP10},
		{"duplicate CL", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na", 1, RefuseDuplicateCL},
		{"obs-fold", "GET / HTTP/1.1\r\nA: 1\r\n\t2\r\n\r\n", 1, RefuseObsFold},
		{"underscore", "GET / HTTP/1.1\r\nX_A: 1\r\n\r\n", 1, RefuseUnderscore},
		{"underscore in a value is fine", "GET / HTTP/1.1\r\nX-A: a_b\r\n\r\n", 0, RefuseNone},
		{"fragment", "GET /a#b HTTP/1.1\r\n\r\n", 1, RefuseFragment},
		{"too many headers", "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 1, RefuseTooManyHeaders},
		{"second head after a CL body", "POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\nX_A: \r\nGET / HTTP/1.1\r\nX_B: 1\r\n\r\n", 2, RefuseUnderscore},
		{"second head after a chunked body", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nX_A: \r\n0\r\nTrailer: 1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 2, RefuseCLAndTE},
		{"bare LF", "GET / HTTP/1.1\nX_A: 1\n\n", 1, RefuseUnderscore},
		// Legal but long lines never switch the judging off (issue: one
		// legal request used to wave the next one through).
		{"80-byte chunk extension", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;" + strings.Repeat("e", 80) + "\r\nabc\r\n0\r\n\r\n" + smuggled, 2, RefuseCLAndTE},
		{"chunk size padded with 70 spaces", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3" + strings.Repeat(" ", 70) + "\r\nabc\r\n0\r\n\r\n" + smuggled, 2, RefuseCLAndTE},
		{"Content-Length: 0", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + "GET / HTTP/1.1\r\nX_A: 1\r\n\r\n", 2, RefuseUnderscore},
		{"Content-Length with leading zeros", "POST / HTTP/1.1\r\nContent-Length: 000000000000000000005\r\n\r\nabcde" + smuggled, 2, RefuseCLAndTE},
		{"70 spaces before a Content-Length", "POST / HTTP/1.1\r\nContent-Length:" + strings.Repeat(" ", 70) + "5\r\n\r\nabcde" + smuggled, 2, RefuseCLAndTE},
		{"70 spaces before a Transfer-Encoding", "POST / HTTP/1.1\r\nTransfer-Encoding:" + strings.Repeat(" ", 70) + "chunked\r\n\r\n0\r\n\r\n" + smuggled, 2, RefuseCLAndTE},
		// What cannot be judged ends the judging with a refusal.
		{"chunk line over 4 KiB", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;" + strings.Repeat("e", 5000) + "\r\nabc\r\n0\r\n\r\n" + smuggled, 1, RefuseUnjudged},
		{"bytes after chunk data", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n" + smuggled, 1, RefuseUnjudged},
		{"17 hex digits", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\n" + smuggled, 1, RefuseUnjudged},
		{"Content-Length not a number", "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\nabcde" + smuggled, 1, RefuseUnjudged},
		{"empty Host", "GET / HTTP/1.1\r\nHost:   \r\n\r\n", 1, RefuseEmptyHost},
		{"HTTP/1.0 without Host is fine", "GET / HTTP/1.0\r\n\r\n", 0, RefuseNone},
		{"head over max_header_bytes", "GET / HTTP/1.1\r\nX-A: " + strings.Repeat("a", 300) + "\r\n\r\n", 1, RefuseHeadTooLarge},
		{"empty lines before request lines are fine", "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET / HTTP/1.1\r\nX_A: 1\r\n\r\n", 2, RefuseUnderscore},
		{"gzip coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled, 1, RefuseBadCoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for split := 0; split <= len(tc.in); split++ { // every way to cut it in two reads
				tr := Tracker{MaxHeaders: 2, MaxHeadBytes: 256}
				_, seq, reason := tr.Scan([]byte(tc.in[:split]))
				if reason == RefuseNone {
					_, seq, reason = tr.Scan([]byte(tc.in[split:]))
				}
				if seq != tc.seq || reason != tc.reason {
					t.Fatalf("split at %d: got head %d reason %d, want head %d reason %d", split, seq, reason, tc.seq, tc.reason)
				}
			}
		})
	}
}

// FuzzTracker checks that the tracker never panics and judges a stream the
// same however it is cut into reads.
func FuzzTracker(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), uint(10))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nX_A: 1\r\n\r\n"), uint(7))
	f.Fuzz(func(t *testing.T, in []byte, cut uint) {
		whole := Tracker{MaxHeaders: 5, MaxHeadBytes: 200}
		w := append([]byte(nil), in...)
		n1, seq1, r1 := whole.Scan(w)
		split := int(cut % uint(len(in)+1))
		parts := Tracker{MaxHeaders: 5, MaxHeadBytes: 200}
		a, b := append([]byte(nil), in[:split]...), append([]byte(nil), in[split:]...)
		na, seq2, r2 := parts.Scan(a)
		nb := 0
		if r2 == RefuseNone {
			nb, seq2, r2 = parts.Scan(b)
		}
		if seq1 != seq2 || r1 != r2 {
			t.Fatalf("whole: head %d reason %d; split at %d: head %d reason %d", seq1, r1, split, seq2, r2)
		}
		// What is passed on (empty lines before a request line dropped)
		// does not depend on the cut either.
		if r1 == RefuseNone && string(w[:n1]) != string(a[:na])+string(b[:nb]) {
			t.Fatalf("split at %d: passed on %q, whole: %q", split, string(a[:na])+string(b[:nb]), w[:n1])
		}
	})
}

// TestEmptyLinesDropped: the guard passes a request on without the empty
// lines before it (RFC 9112 §2.2), whatever the reads.
func TestEmptyLinesDropped(t *testing.T) {
	in := "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
	want := "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
	for split := 0; split <= len(in); split++ {
		tr := Tracker{}
		a, b := []byte(in[:split]), []byte(in[split:])
		na, _, _ := tr.Scan(a)
		nb, _, _ := tr.Scan(b)
		if got := string(a[:na]) + string(b[:nb]); got != want {
			t.Fatalf("split at %d: got %q", split, got)
		}
	}
}

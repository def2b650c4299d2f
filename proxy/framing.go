package proxy

import "bytes"

// tracker follows HTTP/1 request framing on one connection as the bytes go
// by, the way net/http reads it, to find each request head and judge it
// (see guard.go). It keeps a few bytes of the current line, never the
// message. It is not safe for concurrent use.
type tracker struct {
	maxHeaders int // 0: no cap

	state     uint8
	line      [lineKeep]byte // the start of the current line
	lineLen   int            // the current line's length so far
	colon     bool           // the current header line's name is complete
	tail      uint64         // the request line's last 8 bytes (CR excluded)
	remaining int64          // body or chunk bytes still to come
	seq       int64          // heads completed

	// The current head.
	lines      int // header lines (the request line excluded)
	clCount    int
	cl         int64
	teCount    int
	teChunked  bool
	http10     bool
	fold       bool
	underscore bool
	fragment   bool
	unsure     bool // something net/http will reject: stop after this head

	seqLineDone bool // the current head's request line is complete
}

// lineKeep bounds what is kept of a line: enough for a header name and a
// Content-Length or Transfer-Encoding value; longer ones are malformed.
const lineKeep = 64

const (
	stHead      uint8 = iota // reading a request line or header lines
	stBody                   // a Content-Length body
	stChunkSize              // a chunk-size line
	stChunkData              // chunk data
	stChunkEnd               // the CRLF after chunk data
	stTrailer                // trailer lines after the last chunk
	stOff                    // unsure or done: no more judging
)

// http10 is "HTTP/1.0" as the tracker's rolling tail holds it.
var http10Tail = func() uint64 {
	var v uint64
	for _, c := range []byte("HTTP/1.0") {
		v = v<<8 | uint64(c)
	}
	return v
}()

// inBody reports whether the tracker is inside a request body (chunk
// framing included).
func (t *tracker) inBody() bool { return t.state >= stBody && t.state <= stTrailer }

// scan consumes p and returns the number of the first head in p that must
// be refused and why (refuseNone when none is). After a refused head the
// tracker stops.
func (t *tracker) scan(p []byte) (seq int64, reason uint8) {
	for len(p) > 0 {
		switch t.state {
		case stOff:
			return 0, refuseNone
		case stBody, stChunkData:
			n := int64(len(p))
			if n > t.remaining {
				n = t.remaining
			}
			t.remaining -= n
			p = p[n:]
			if t.remaining == 0 {
				if t.state == stBody {
					t.state = stHead
				} else {
					t.state = stChunkEnd
				}
			}
		case stChunkEnd:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				return 0, refuseNone
			}
			p = p[i+1:]
			t.state = stChunkSize
		default: // line-oriented states
			i := bytes.IndexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i]
			}
			t.addToLine(chunk)
			if i < 0 {
				return 0, refuseNone
			}
			p = p[i+1:]
			if r := t.endLine(); r != refuseNone {
				t.state = stOff
				return t.seq, r
			}
		}
	}
	return 0, refuseNone
}

// addToLine records part of the current line.
func (t *tracker) addToLine(b []byte) {
	if t.state == stHead {
		requestLine := !t.seqLineDone
		for _, c := range b {
			if requestLine {
				if c == '#' {
					t.fragment = true
				}
				if c != '\r' {
					t.tail = t.tail<<8 | uint64(c)
				}
				continue
			}
			if !t.colon {
				switch c {
				case ':':
					t.colon = true
				case '_':
					t.underscore = true
				}
			}
		}
	}
	if t.lineLen < lineKeep {
		copy(t.line[t.lineLen:], b)
	}
	t.lineLen += len(b)
}

// endLine handles a complete line and returns a refusal reason for a head
// that is complete and bad.
func (t *tracker) endLine() uint8 {
	n := t.lineLen
	if n > lineKeep {
		n = lineKeep
	}
	line := t.line[:n]
	if t.lineLen <= lineKeep && n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	long := t.lineLen > lineKeep
	empty := t.lineLen == 0 || (t.lineLen == 1 && t.line[0] == '\r')
	t.lineLen, t.colon = 0, false

	switch t.state {
	case stHead:
		if !t.seqLineDone {
			if empty {
				t.state = stOff // net/http rejects a head without a request line
				return refuseNone
			}
			t.seqLineDone = true
			t.http10 = t.tail == http10Tail
			return refuseNone
		}
		if empty {
			return t.endHead()
		}
		t.lines++
		if line[0] == ' ' || line[0] == '\t' {
			t.fold = true
			return refuseNone
		}
		t.header(line, long)
	case stChunkSize:
		if long || empty {
			t.state = stOff
			return refuseNone
		}
		size, ok := chunkSize(line)
		switch {
		case !ok:
			t.state = stOff
		case size == 0:
			t.state = stTrailer
		default:
			t.remaining, t.state = size, stChunkData
		}
	case stTrailer:
		if empty {
			t.state = stHead
		}
	}
	return refuseNone
}

// header records a header line that matters to framing.
func (t *tracker) header(line []byte, long bool) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return // net/http rejects it
	}
	name, value := line[:i], bytes.Trim(line[i+1:], " \t")
	switch {
	case bytes.EqualFold(name, []byte("Content-Length")):
		t.clCount++
		n, ok := decimal(value)
		if long || !ok {
			t.unsure = true
		}
		t.cl = n
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		t.teCount++
		t.teChunked = !long && bytes.EqualFold(value, []byte("chunked"))
	}
}

// endHead judges a complete head and sets up reading its body.
func (t *tracker) endHead() uint8 {
	t.seq++
	var reason uint8
	switch {
	case t.teCount > 0 && t.clCount > 0:
		reason = refuseCLAndTE
	case t.teCount > 0 && t.http10:
		reason = refuseTEOnHTTP10
	case t.clCount > 1:
		reason = refuseDuplicateCL
	case t.fold:
		reason = refuseObsFold
	case t.underscore:
		reason = refuseUnderscore
	case t.fragment:
		reason = refuseFragment
	case t.maxHeaders > 0 && t.lines > t.maxHeaders:
		reason = refuseTooManyHeaders
	}
	switch {
	case reason != refuseNone || t.unsure:
		t.state = stOff
	case t.teCount == 1 && t.teChunked:
		t.state = stChunkSize
	case t.teCount > 0:
		t.state = stOff // net/http answers 501
	case t.cl > 0:
		t.state, t.remaining = stBody, t.cl
	default:
		t.state = stHead
	}
	t.lines, t.clCount, t.cl, t.teCount, t.teChunked = 0, 0, 0, 0, false
	t.http10, t.fold, t.underscore, t.fragment, t.unsure = false, false, false, false, false
	t.seqLineDone, t.tail = false, 0
	return reason
}

// decimal parses a Content-Length value as net/http accepts it: digits only.
func decimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// chunkSize parses a chunk-size line as net/http does: trailing white
// space and a chunk extension (";...") ignored, then 1 to 16 hex digits.
func chunkSize(line []byte) (int64, bool) {
	line = bytes.TrimRight(line, " \t")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = bytes.TrimRight(line[:i], " \t")
	}
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		n = n<<4 | int64(v)
	}
	return n, true
}

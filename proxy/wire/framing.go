package wire

import "bytes"

// Tracker follows HTTP/1 request framing on one connection as the bytes go
// by, the way net/http reads it, to find each request head and judge it
// (see guard.go). It keeps a few bytes of the current line, never the
// message. It is not safe for concurrent use.
type Tracker struct {
	MaxHeaders   int // 0: no cap
	MaxHeadBytes int // 0: no cap
	headBytes    int // of the current head so far

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
	unsure     bool // a framing value it cannot judge: refused, and so is what follows
	emptyHost  bool // a Host field with an empty value

	seqLineDone bool // the current head's request line is complete

	// The value of the current Content-Length or Transfer-Encoding line,
	// or the current chunk-size line, parsed as it streams by: white space
	// and leading zeros cost nothing, however many there are.
	valKind  uint8 // valNone, valCL, valTE
	val      [24]byte
	valLen   int  // significant bytes seen (may exceed len(val))
	valTrail int  // trailing white space after them
	valZero  bool // a leading zero was skipped (Content-Length)
	crSeen   bool // the CR after chunk data
	chunk    chunkLine
}

// Which header value is being collected.
const (
	valNone uint8 = iota
	valCL
	valTE
	valHost
)

// chunkLine parses a chunk-size line as net/http reads it: 1 to 16 hex
// digits, then a chunk extension after ";" (ignored) or trailing white
// space; lines longer than 4096 bytes are refused.
type chunkLine struct {
	size   int64
	digits int
	state  uint8 // 0: digits, 1: white space after them, 2: extension
	bad    bool
}

const maxChunkLineBytes = 4096

func (c *chunkLine) add(b []byte) {
	for _, ch := range b {
		if c.bad {
			return
		}
		switch c.state {
		case 0:
			if v, ok := unhex(ch); ok {
				c.digits++
				c.size = c.size<<4 | int64(v)
				if c.digits > 16 {
					c.bad = true
				}
				continue
			}
			if c.digits == 0 {
				c.bad = true
				continue
			}
			switch ch {
			case ';':
				c.state = 2
			case ' ', '\t', '\r':
				c.state = 1
			default:
				c.bad = true
			}
		case 1:
			switch ch {
			case ' ', '\t', '\r':
			case ';':
				c.bad = true // net/http trims only trailing white space
			default:
				c.bad = true
			}
		}
	}
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
	stOff                    // poisoned: every later head is refused
)

// http10 is "HTTP/1.0" as the tracker's rolling tail holds it.
var http10Tail = func() uint64 {
	var v uint64
	for _, c := range []byte("HTTP/1.0") {
		v = v<<8 | uint64(c)
	}
	return v
}()

// InBody reports whether the tracker is inside a request body (chunk
// framing included).
func (t *Tracker) InBody() bool { return t.state >= stBody && t.state <= stTrailer }

// Scan consumes p and returns the number of the first head in p that must
// be refused and why (refuseNone when none is). After a refused head, or a
// line it cannot judge, the tracker stops and every later head of the
// connection is refused with refuseUnjudged (see guardConn.verdict): one
// request can never switch the checks off for the next.
func (t *Tracker) Scan(p []byte) (n int, seq int64, reason uint8) {
	buf, w := p, 0 // kept bytes are compacted into buf[:w]
	keep := func(k int) {
		if w != len(buf)-len(p) {
			copy(buf[w:], p[:k])
		}
		w += k
		p = p[k:]
	}
	for len(p) > 0 {
		switch t.state {
		case stOff:
			keep(len(p))
			return w, 0, RefuseNone
		case stBody, stChunkData:
			n := int64(len(p))
			if n > t.remaining {
				n = t.remaining
			}
			t.remaining -= n
			keep(int(n))
			if t.remaining == 0 {
				if t.state == stBody {
					t.state = stHead
				} else {
					t.state = stChunkEnd
				}
			}
		case stChunkEnd:
			// Exactly CRLF after chunk data, as net/http requires.
			c := p[0]
			keep(1)
			switch {
			case c == '\r' && !t.crSeen:
				t.crSeen = true
			case c == '\n' && t.crSeen:
				t.crSeen = false
				t.state = stChunkSize
			default:
				t.state = stOff
				keep(len(p))
				return w, t.seq, RefuseUnjudged
			}
		default: // line-oriented states
			if t.state == stHead && !t.seqLineDone && t.lineLen == 0 && (p[0] == '\r' || p[0] == '\n') {
				p = p[1:] // an empty line before a request line: dropped
				continue
			}
			i := bytes.IndexByte(p, '\n')
			chunk := p
			if i >= 0 {
				chunk = p[:i]
			}
			t.addToLine(chunk)
			if t.state == stHead {
				t.headBytes += len(chunk) + 1
			}
			if i < 0 {
				keep(len(p))
				return w, 0, RefuseNone
			}
			keep(i + 1)
			if r := t.endLine(); r != RefuseNone {
				t.state = stOff
				keep(len(p))
				return w, t.seq, r
			}
		}
	}
	return w, 0, RefuseNone
}

// addToLine records part of the current line.
func (t *Tracker) addToLine(b []byte) {
	if t.state == stChunkSize {
		t.chunk.add(b)
	}
	requestLine := t.state == stHead && !t.seqLineDone
	for _, c := range b {
		if t.lineLen < lineKeep {
			t.line[t.lineLen] = c
		}
		t.lineLen++
		if t.state != stHead {
			continue
		}
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
				t.startValue()
			case '_':
				t.underscore = true
			}
			continue
		}
		if t.valKind != valNone {
			t.addValue(c)
		}
	}
}

// startValue decides, at a header line's colon, whether its value matters
// to framing.
func (t *Tracker) startValue() {
	name := t.line[:min(t.lineLen-1, lineKeep)] // without the colon
	t.valKind, t.valLen, t.valTrail, t.valZero = valNone, 0, 0, false
	switch {
	case t.lineLen-1 > lineKeep:
	case bytes.EqualFold(name, []byte("Content-Length")):
		t.valKind = valCL
	case bytes.EqualFold(name, []byte("Transfer-Encoding")):
		t.valKind = valTE
	case bytes.EqualFold(name, []byte("Host")):
		t.valKind = valHost
	}
}

// addValue collects one byte of a Content-Length or Transfer-Encoding
// value: leading white space (and a Content-Length's leading zeros)
// skipped, trailing white space counted apart.
func (t *Tracker) addValue(c byte) {
	switch {
	case c == '\r':
		return
	case c == ' ' || c == '\t':
		if t.valLen > 0 {
			t.valTrail++
		}
		return
	case t.valKind == valCL && c == '0' && t.valLen == 0:
		t.valZero = true
		return
	}
	if t.valTrail > 0 { // white space inside the value: keep it, it is not trailing
		for ; t.valTrail > 0; t.valTrail-- {
			t.pushValue(' ')
		}
	}
	t.pushValue(c)
}

func (t *Tracker) pushValue(c byte) {
	if t.valLen < len(t.val) {
		t.val[t.valLen] = c
	}
	t.valLen++
}

// value returns the collected value, and false when it was too long to keep.
func (t *Tracker) value() ([]byte, bool) {
	if t.valLen > len(t.val) {
		return nil, false
	}
	if t.valKind == valCL && t.valLen == 0 && t.valZero {
		return []byte("0"), true
	}
	return t.val[:t.valLen], true
}

// endLine handles a complete line and returns a refusal reason for a head
// that is complete and bad.
func (t *Tracker) endLine() uint8 {
	n := t.lineLen
	if n > lineKeep {
		n = lineKeep
	}
	line := t.line[:n]
	if t.lineLen <= lineKeep && n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	length := t.lineLen
	empty := t.lineLen == 0 || (t.lineLen == 1 && t.line[0] == '\r')
	t.lineLen, t.colon = 0, false

	switch t.state {
	case stHead:
		if !t.seqLineDone {
			// (Empty lines before a request line never get here: scan
			// drops them.)
			t.seqLineDone = true
			t.http10 = t.tail == http10Tail
			return RefuseNone
		}
		if empty {
			return t.endHead()
		}
		t.lines++
		if line[0] == ' ' || line[0] == '\t' {
			t.fold = true
			return RefuseNone
		}
		t.header(line)
	case stChunkSize:
		c := t.chunk
		t.chunk = chunkLine{}
		if c.bad || c.digits == 0 || length > maxChunkLineBytes {
			// net/http fails this body: nothing after it is judged.
			t.state = stOff
			return RefuseUnjudged
		}
		switch {
		case c.size == 0:
			t.state = stTrailer
		default:
			t.remaining, t.state = c.size, stChunkData
		}
	case stTrailer:
		if empty {
			t.state = stHead
		}
	}
	return RefuseNone
}

// header records a header line that matters to framing.
func (t *Tracker) header(line []byte) {
	if bytes.IndexByte(line, ':') < 0 {
		t.unsure = true // net/http rejects it: refuse it and what follows
		return
	}
	v, kept := t.value()
	kind := t.valKind
	t.valKind = valNone
	switch kind {
	case valCL:
		t.clCount++
		n, ok := decimal(v)
		if !kept || !ok {
			t.unsure = true
		}
		t.cl = n
	case valHost:
		t.emptyHost = t.emptyHost || t.valLen == 0
	case valTE:
		t.teCount++
		t.teChunked = kept && bytes.EqualFold(v, []byte("chunked"))
	}
}

// endHead judges a complete head and sets up reading its body.
func (t *Tracker) endHead() uint8 {
	t.seq++
	var reason uint8
	switch {
	case t.teCount > 0 && t.clCount > 0:
		reason = RefuseCLAndTE
	case t.teCount > 0 && t.http10:
		reason = RefuseTEOnHTTP10
	case t.clCount > 1:
		reason = RefuseDuplicateCL
	case t.fold:
		reason = RefuseObsFold
	case t.underscore:
		reason = RefuseUnderscore
	case t.fragment:
		reason = RefuseFragment
	case t.MaxHeaders > 0 && t.lines > t.MaxHeaders:
		reason = RefuseTooManyHeaders
	case t.unsure:
		reason = RefuseUnjudged
	case t.emptyHost:
		reason = RefuseEmptyHost
	case t.MaxHeadBytes > 0 && t.headBytes > t.MaxHeadBytes:
		reason = RefuseHeadTooLarge
	case t.teCount > 0 && !(t.teCount == 1 && t.teChunked):
		reason = RefuseBadCoding // net/http answers 501 for it
	}
	switch {
	case reason != RefuseNone:
		t.state = stOff
	case t.teCount == 1 && t.teChunked:
		t.state, t.chunk = stChunkSize, chunkLine{}
	case t.cl > 0:
		t.state, t.remaining = stBody, t.cl
	default:
		t.state = stHead
	}
	t.lines, t.clCount, t.cl, t.teCount, t.teChunked = 0, 0, 0, 0, false
	t.http10, t.fold, t.underscore, t.fragment, t.unsure = false, false, false, false, false
	t.seqLineDone, t.tail, t.emptyHost, t.headBytes = false, 0, false, 0
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

// ChunkSize parses a chunk-size line as net/http does: trailing white
// space and a chunk extension (";...") ignored, then 1 to 16 hex digits.
func ChunkSize(line []byte) (int64, bool) {
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

// Reasons a request head is refused; see guardConn.verdict.
const (
	RefuseNone uint8 = iota
	RefuseCLAndTE
	RefuseTEOnHTTP10
	RefuseDuplicateCL
	RefuseObsFold
	RefuseUnderscore
	RefuseFragment
	RefuseTooManyHeaders
	RefuseUnjudged  // a framing line the guard cannot judge, or anything after it
	RefuseBadCoding // a transfer coding other than one "chunked"
	RefuseEmptyHost // "Host:" with an empty value (nginx refuses it too)
	RefuseHeadTooLarge
)

package wire

import (
	"bytes"
	"errors"
)

// maxRespFields bounds an upstream response head's fields in the fast lane;
// a head with more is a 502.
const maxRespFields = 1000

// inlineRespFields are kept in the head itself: a response with more fields
// spills onto the heap (rare), so that a pooled exchange stays small.
const inlineRespFields = 64

// respHead is an upstream response head, its slices pointing into the
// exchange's input buffer.
type ResponseHead struct {
	Status        int
	reason        []byte
	HTTP10        bool
	Fields        []respField // inline[:0] unless a head had more fields
	NFields       int
	ContentLength int64 // -1: none
	Chunked       bool
	Close         bool // the upstream closes after this response
	HasDate       bool
	Size          int // bytes of the head, final CRLF included
	// Last: the scalars above share cache lines with the fields' start,
	// and a head with few fields touches few of inline's 3.5 KiB.
	inline [inlineRespFields]respField
}

type respField struct {
	Name, Value []byte
	Kind        respKind
}

type respKind uint8

const (
	respPlain    respKind = iota
	RespHopByHop          // never relayed
	RespTrailer           // relayed with a chunked body only
	RespLength            // relayed unless the body is chunked
)

// parseResponse parses the response head at the start of b. It returns
// complete false (and no error) while the head is incomplete. Lines end in
// CRLF or a bare LF (RFC 9112 §2.2; nginx and net/http accept both). It
// rejects obs-fold, a version other than HTTP/1.x, more than maxRespFields
// fields, and a head whose framing is ambiguous (differing Content-Length
// values, a transfer coding other than chunked).
func ParseResponseHead(b []byte, r *ResponseHead) (complete bool, err error) {
	size := headEnd(b)
	if size < 0 {
		if len(b) >= len(httpPrefix) && !bytes.HasPrefix(b, httpPrefix) {
			return false, ErrBadResponse
		}
		return false, nil
	}
	r.Size = size
	head := b[:size]
	nl := bytes.IndexByte(head, '\n')
	line := dropCR(head[:nl])
	// HTTP/d.d, as nginx and net/http read it: a version other than 1.x
	// is relayed as HTTP/1.1; 1.0 keeps its connection semantics.
	if len(line) < 12 || !bytes.HasPrefix(line, httpPrefixAny) || !isDigit(line[5]) || line[6] != '.' ||
		!isDigit(line[7]) || line[5] == '0' {
		return false, ErrBadResponse
	}
	r.HTTP10 = line[5] == '1' && line[7] == '0'
	rest := line[8:]
	if len(rest) == 0 || rest[0] != ' ' {
		return false, ErrBadResponse
	}
	rest = bytes.TrimLeft(rest, " ") // extra spaces before the status: accepted, as nginx and net/http do
	if len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' {
		return false, ErrBadResponse
	}
	status := 0
	for _, c := range rest[:3] {
		if !isDigit(c) {
			return false, ErrBadResponse
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return false, ErrBadResponse
	}
	r.Status, r.reason = status, nil
	if len(rest) > 4 {
		reason := bytes.TrimLeft(rest[4:], " ")
		if !ValidValue(reason) {
			return false, ErrBadResponse
		}
		r.reason = reason
	}

	r.NFields, r.ContentLength, r.Chunked, r.Close, r.HasDate = 0, -1, false, r.HTTP10, false
	lengths, codings := 0, 0
	var connection [4][]byte // Connection field values, for the fields they nominate
	nconn := 0
	for p := head[nl+1:]; len(p) > 0; {
		nl := bytes.IndexByte(p, '\n')
		line := dropCR(p[:nl])
		p = p[nl+1:]
		if len(line) == 0 {
			break // the empty line that ends the head
		}
		if r.NFields == maxRespFields {
			return false, ErrBadResponse
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !IsResponseToken(line[:colon]) {
			return false, ErrBadResponse // obs-fold included
		}
		name, value := line[:colon], TrimOWS(line[colon+1:])
		if !ValidValue(value) {
			return false, ErrBadResponse
		}
		kind := respPlain
		switch Classify(name) {
		case nameTE, NameUpgrade, nameKeepAlive, nameProxyConnection, nameProxyAuthenticate, nameProxyAuthorization:
			kind = RespHopByHop
		case nameDate:
			r.HasDate = true
		case nameTrailer:
			kind = RespTrailer
		case NameConnection:
			kind = RespHopByHop
			if nconn == len(connection) {
				return false, ErrBadResponse
			}
			connection[nconn] = value
			nconn++
		case nameContentLength:
			kind = RespLength
			n, ok := decimal(value)
			if !ok || lengths > 0 && n != r.ContentLength {
				return false, ErrBadResponse
			}
			lengths++
			r.ContentLength = n
		case nameTransferEncoding:
			kind = RespHopByHop
			codings++
			if codings > 1 || !equalFold(value, "chunked") {
				return false, ErrBadResponse
			}
			r.Chunked = true
		}
		if r.Fields == nil {
			r.Fields = r.inline[:0]
		}
		r.Fields = append(r.Fields[:r.NFields], respField{Name: name, Value: value, Kind: kind})
		r.NFields++
	}
	if r.Chunked && lengths > 0 {
		// Both: chunked wins (RFC 9112 §6.3), and the connection is not
		// trusted for another exchange.
		r.ContentLength, r.Close = -1, true
	}
	for _, v := range connection[:nconn] {
		for len(v) > 0 {
			var tok []byte
			tok, v = nextToken(v)
			switch {
			case len(tok) == 0:
			case bytes.EqualFold(tok, []byte("close")):
				r.Close = true
			case bytes.EqualFold(tok, []byte("keep-alive")):
				if r.HTTP10 {
					r.Close = false
				}
			default:
				for i := 0; i < r.NFields; i++ {
					if bytes.EqualFold(r.Fields[i].Name, tok) {
						r.Fields[i].Kind = RespHopByHop
					}
				}
			}
		}
	}
	return true, nil
}

// IsResponseToken reports whether b is an RFC 9110 token (underscores
// included: they are legal, and only the client side refuses them).
func IsResponseToken(b []byte) bool {
	for _, c := range b {
		if !tokenChar[c] && c != '_' {
			return false
		}
	}
	return true
}

// headEnd returns the length of the head at the start of b, its empty last
// line included, or -1 while it is incomplete. Lines end in CRLF or LF.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// dropCR removes a line's final CR.
func dropCR(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\r' {
		return l[:n-1]
	}
	return l
}

var httpPrefixAny = []byte("HTTP/")

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

var (
	ErrBadResponse = errors.New("malformed response from upstream")
)

package wire

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var (
	CRLF          = []byte("\r\n")
	LastChunkHead = []byte("0\r\n")
)

// AppendStatusLine appends the response's status line as HTTP/1.1.
func AppendStatusLine(b []byte, r *ResponseHead) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ' ')
	if len(r.reason) > 0 {
		return append(append(b, r.reason...), "\r\n"...)
	}
	if t := http.StatusText(r.Status); t != "" {
		b = append(b, t...)
	}
	return append(b, "\r\n"...)
}

// Dropper names the fields a writer leaves out (the header edits of route
// filters); it must not allocate.
type Dropper interface {
	Dropped(name []byte) bool
}

// AppendFields appends the response's end-to-end fields: Trailer only with
// a chunked body, Content-Length only when the upstream's body is not
// chunked and length is true, none that drop (when not nil) names.
func AppendFields(b []byte, r *ResponseHead, chunked, length bool, drop Dropper) []byte {
	for i := 0; i < r.NFields; i++ {
		f := &r.Fields[i]
		if drop != nil && drop.Dropped(f.Name) {
			continue
		}
		switch f.Kind {
		case RespHopByHop:
			continue
		case RespTrailer:
			if !chunked {
				continue
			}
		case RespLength:
			if r.Chunked || !length || r.Status < 200 {
				continue
			}
		}
		b = AppendHeaderLine(b, f.Name, f.Value)
	}
	return b
}

func AppendHeaderLine(b, name, value []byte) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// AppendErrorResponse appends ferry's short plain-text answer; a HEAD
// answer has the same head and no body. extra holds more fields, each
// ending in CRLF.
func AppendErrorResponse(b []byte, code int, msg string, extra []byte, closing, head bool, now time.Time) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(msg)+1), 10)
	b = append(b, "\r\nDate: "...)
	b = append(b, HTTPDate(now)...)
	if len(extra) > 0 {
		b = append(b, "\r\n"...)
		b = append(b, extra[:len(extra)-2]...)
	}
	if closing {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	if head {
		return b
	}
	b = append(b, msg...)
	return append(b, '\n')
}

// date is the Date header value, formatted once a second.
type dateValue struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[dateValue]

func HTTPDate(now time.Time) []byte {
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &dateValue{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, 29), http.TimeFormat)}
	dateCache.Store(d)
	return d.b
}

// ValidField reports whether name is a token and value holds no CR, LF or
// NUL: a field from a route filter (a JWT claim, a configured value) is
// written only if it cannot break the head it goes into.
func ValidField(name, value string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tokenChar[name[i]] {
			return false
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// AppendAnswer appends a route filter's own response (a 401, a 429, a
// cached response): its status, its fields in order except the framing
// ones (Content-Length, Transfer-Encoding, Connection), which are written
// here, and its body; a Date unless the fields carry one; then extra (more
// fields, each ending in CRLF). A HEAD answer, a 204 and a 304 have no
// body; a 204 and a 304 no Content-Length.
func AppendAnswer(b []byte, code int, fields [][2]string, body []byte, extra []byte, closing, head bool, now time.Time) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\n"...)
	hasDate := false
	for _, f := range fields {
		switch {
		case strings.EqualFold(f[0], "Content-Length"), strings.EqualFold(f[0], "Transfer-Encoding"),
			strings.EqualFold(f[0], "Connection"), !ValidField(f[0], f[1]):
			continue
		case strings.EqualFold(f[0], "Date"):
			hasDate = true
		}
		b = append(b, f[0]...)
		b = append(b, ": "...)
		b = append(b, f[1]...)
		b = append(b, "\r\n"...)
	}
	noBody := code == http.StatusNoContent || code == http.StatusNotModified
	if !noBody {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	if !hasDate {
		b = append(b, "Date: "...)
		b = append(b, HTTPDate(now)...)
		b = append(b, "\r\n"...)
	}
	b = append(b, extra...)
	if closing {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if head || noBody {
		return b
	}
	return append(b, body...)
}

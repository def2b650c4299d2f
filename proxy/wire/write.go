package wire

import (
	"net/http"
	"strconv"
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

// AppendFields appends the response's end-to-end fields: Trailer only with
// a chunked body, Content-Length only when the upstream's body is not
// chunked and length is true.
func AppendFields(b []byte, r *ResponseHead, chunked, length bool) []byte {
	for i := 0; i < r.NFields; i++ {
		f := &r.Fields[i]
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
// answer has the same head and no body.
func AppendErrorResponse(b []byte, code int, msg, extra string, closing, head bool, now time.Time) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(msg)+1), 10)
	b = append(b, "\r\nDate: "...)
	b = append(b, HTTPDate(now)...)
	if extra != "" {
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

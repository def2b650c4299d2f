// Package accesslog writes one line per finished request, as text or JSON,
// without allocating on the request path.
package accesslog

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ferry-proxy/ferry/proxy/wire"
)

// Entry describes one finished request. Route, Service and Upstream are
// empty when the request did not get that far; Upstream is the last
// attempt's instance (host:port) and Attempts counts the attempts made. An
// entry is owned by the Handler and lent to Logger.Log for the
// duration of the call only; it is not safe for concurrent use.
type Entry struct {
	Start     time.Time
	Duration  time.Duration
	Client    string // the client's address (host:port)
	Method    string
	Host      string
	Path      string // the canonical path; as received when it was rejected; no query
	Proto     string
	Status    int // 499 when the client went away before the upstream answered
	BytesSent int64
	Route     string
	Service   string
	Upstream  string
	Attempts  int
	RequestID string // X-Request-Id (the trusted peer's or ferry's own)
	// AnsweredBy names the route filter that answered instead of
	// forwarding (jwt, rate_limit); "" otherwise. Written only when set.
	AnsweredBy string
}

// Logger records finished requests. Log is called synchronously at the
// end of every request, from many goroutines at once, so implementations
// must be safe for concurrent use; they must not retain e after Log returns.
type Logger interface {
	Log(e *Entry)
}

// New returns an Logger writing one line per request to w, in
// format "json" (one object per line) or otherwise "text":
//
//	2026-11-24T17:00:00.000Z 127.0.0.1:5555 "GET /api/user/1 HTTP/1.1" 200 64 1.234ms host=shop.example route=users service=user upstream=127.0.0.1:9001 attempts=1
//
// Each line reaches w in a single Write call and no lock is held around it,
// so w must be safe for concurrent use (an *os.File is). The logger is safe
// for concurrent use.
func New(w io.Writer, format string) Logger {
	return &accessLog{w: w, json: format == "json"}
}

type accessLog struct {
	w    io.Writer
	json bool
	// dcs names, per service and upstream address, the datacenter of
	// instances served from a failover datacenter; nil or empty while no
	// service is failed over (the common case costs one load).
	dcs atomic.Pointer[map[string]map[string]string]
}

// SetFailoverDatacenters tells an Logger made by New which
// upstreams (service → instance address → datacenter) belong to a failover
// datacenter; their lines get "dc=NAME" (text) or "datacenter" (JSON).
// Other loggers ignore it. Safe for concurrent use with Log.
func SetFailoverDatacenters(l Logger, dcs map[string]map[string]string) {
	if al, ok := l.(*accessLog); ok {
		al.dcs.Store(&dcs)
	}
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLog) Log(e *Entry) {
	bp := lineBuffers.Get().(*[]byte)
	var b []byte
	if l.json {
		b = appendJSONLine((*bp)[:0], e)
	} else {
		b = appendTextLine((*bp)[:0], e)
	}
	if m := l.dcs.Load(); m != nil && len(*m) > 0 && e.Upstream != "" {
		if dc := (*m)[e.Service][e.Upstream]; dc != "" {
			b = appendDatacenter(b, dc, l.json)
		}
	}
	l.w.Write(b) // an access log that cannot be written must not fail requests
	if cap(b) <= 64<<10 {
		*bp = b
		lineBuffers.Put(bp)
	}
}

const accessTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// appendDatacenter adds the datacenter to a finished line, before its end.
func appendDatacenter(b []byte, dc string, json bool) []byte {
	if json {
		b = append(b[:len(b)-2], `,"datacenter":`...) // before "}\n"
		b = appendJSONString(b, dc)
		return append(b, '}', '\n')
	}
	b = append(b[:len(b)-1], " dc="...) // before "\n"
	b = appendField(b, dc)
	return append(b, '\n')
}

func appendTextLine(b []byte, e *Entry) []byte {
	b = e.Start.UTC().AppendFormat(b, accessTimeFormat)
	b = append(b, ' ')
	b = appendField(b, e.Client)
	b = append(b, ' ', '"')
	b = appendQuoted(b, e.Method)
	b = append(b, ' ')
	b = appendQuoted(b, e.Path)
	b = append(b, ' ')
	b = appendQuoted(b, e.Proto)
	b = append(b, '"', ' ')
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.BytesSent, 10)
	b = append(b, ' ')
	b = strconv.AppendFloat(b, float64(e.Duration)/float64(time.Millisecond), 'f', 3, 64)
	b = append(b, "ms host="...)
	b = appendField(b, e.Host)
	b = append(b, " route="...)
	b = appendField(b, e.Route)
	b = append(b, " service="...)
	b = appendField(b, e.Service)
	b = append(b, " upstream="...)
	b = appendField(b, e.Upstream)
	b = append(b, " attempts="...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = append(b, " request_id="...)
	b = appendField(b, e.RequestID)
	if e.AnsweredBy != "" {
		b = append(b, " answered_by="...)
		b = appendField(b, e.AnsweredBy)
	}
	return append(b, '\n')
}

// appendField writes a space-free value, "-" when empty. Values come from
// configuration or the server (names, addresses), but are escaped anyway so
// that a line always parses.
func appendField(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '\\' || c >= 0x7f {
			b = append(b, '\\', 'x', wire.UpperHex[c>>4], wire.UpperHex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return b
}

// appendQuoted writes s for the quoted request part of a text line: '"',
// '\' and bytes outside printable ASCII escaped, so a hostile path cannot
// forge a field or a line.
func appendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == '"' || c == '\\' || c >= 0x7f {
			b = append(b, '\\', 'x', wire.UpperHex[c>>4], wire.UpperHex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return b
}

func appendJSONLine(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Start.UTC().AppendFormat(b, accessTimeFormat)
	b = append(b, `","client":`...)
	b = appendJSONString(b, e.Client)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.Path)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, e.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.BytesSent, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.Duration)/float64(time.Millisecond), 'f', 3, 64)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.Route)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, e.Service)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, e.Upstream)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, e.RequestID)
	if e.AnsweredBy != "" {
		b = append(b, `,"answered_by":`...)
		b = appendJSONString(b, e.AnsweredBy)
	}
	return append(b, '}', '\n')
}

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < ' ' || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', wire.UpperHex[c>>4], wire.UpperHex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// Entries recycles Entry values: Log must not retain them.
var Entries = sync.Pool{New: func() any { return new(Entry) }}

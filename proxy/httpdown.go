package proxy

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/sock"
	"github.com/ferry-proxy/ferry/proxy/wire"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// httpDown is the net/http lane's downstream: net/http has parsed the
// request (any framing, chunked uploads, Expect, HTTP/1.0) and frames the
// answer; the exchange forwards through the same core and upstream client
// as the fast lane.
type httpDown struct {
	w        *responseWriter
	r        *http.Request
	trailing bool // trailer fields are being sent
	status   int  // the final status, written with the first body byte (see commit)
}

func (d *httpDown) ReadBody(p []byte) (int, error) { return d.r.Body.Read(p) }

func (d *httpDown) RequestTrailers(b []byte) []byte {
	for _, k := range slices.Sorted(maps.Keys(d.r.Trailer)) {
		for _, v := range d.r.Trailer[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// Gone: net/http cancels the request's context when its background read
// sees the client close the connection.
func (d *httpDown) Gone() bool { return d.r.Context().Err() != nil }

// Context ends when the client goes away (core.ContextDownstream): the h2
// upstream client stops the upstream stream with it.
func (d *httpDown) Context() context.Context { return d.r.Context() }

// EnableFullDuplex lets the response be written while the request body is
// still read (core.FullDuplexDownstream), as the h2 upstream client does:
// without it net/http's HTTP/1.1 server waits, before the first response
// byte, for a body read in progress to end.
func (d *httpDown) EnableFullDuplex() {
	http.NewResponseController(d.w).EnableFullDuplex()
}

// InterruptBody ends a request body read in progress (core.BodyInterrupter)
// when the h2 upstream client is done with the body before the client is:
// a read deadline now, on the HTTP/2 stream or on the HTTP/1.1 connection
// (which then closes after the answer: its framing is lost).
func (d *httpDown) InterruptBody() {
	http.NewResponseController(d.w).SetReadDeadline(time.Now())
}

func (d *httpDown) Informational(x *core.Exchange) error {
	h := d.w.Header()
	copyFields(h, &x.Resp, false)
	d.w.WriteHeader(x.Resp.Status)
	clear(h) // a 1xx's fields are not the final answer's
	return nil
}

func (d *httpDown) Head(x *core.Exchange) error {
	r := &x.Resp
	h := d.w.Header()
	if respHasRequestID(x) {
		delete(h, requestIDField) // the upstream's own is relayed instead
	}
	copyFields(h, r, r.Status != http.StatusNoContent && !x.LengthChanged)
	if e := &x.RespEdits; !e.Empty() {
		for k := range h {
			if e.DroppedString(k) {
				delete(h, k)
			}
		}
		for _, f := range e.Added() {
			if wire.ValidField(f[0], f[1]) {
				h.Add(f[0], f[1])
			}
		}
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // relay none, as the upstream sent none: no sniffing
	}
	if x.BodyUnread && d.r.ProtoMajor == 1 {
		// An h2 upstream answered before taking the whole body (see
		// core.h2BeforeHead): the connection's framing is lost.
		h.Set("Connection", "close")
	}
	d.status = r.Status
	return nil
}

// commit writes the final head once the body starts (or ends): until then
// a failing upstream can still be answered with an error (abort).
func (d *httpDown) commit() {
	if d.status != 0 {
		d.w.WriteHeader(d.status)
		d.status = 0
	}
}

func (d *httpDown) Abort() bool {
	if d.w.wroteHeader {
		return false
	}
	d.status = 0
	h := d.w.Header()
	id := h[requestIDField]
	clear(h)
	if id != nil {
		h[requestIDField] = id // ferry's own answer carries it too
	}
	return true
}

// copyFields copies the response's end-to-end fields into h: no hop-by-hop
// ones, no Trailer announcement (trailers go as they come, see trailer), and
// Content-Length only with a length-delimited body and when length is true.
func copyFields(h http.Header, r *wire.ResponseHead, length bool) {
	for i := 0; i < r.NFields; i++ {
		f := &r.Fields[i]
		switch f.Kind {
		case wire.RespHopByHop, wire.RespTrailer:
			continue
		case wire.RespLength:
			if r.Chunked || !length || r.Status < 200 {
				continue
			}
		}
		k := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		h[k] = append(h[k], string(f.Value))
	}
}

func (d *httpDown) Data(p []byte) error {
	d.commit()
	_, err := d.w.Write(p)
	return err
}

func (d *httpDown) Trailer(line []byte) error {
	d.commit()
	if !d.trailing {
		// A flush commits net/http to a chunked body, which alone can
		// carry trailers (it would otherwise send a short body with a
		// Content-Length).
		d.trailing = true
		if err := d.w.flush(); err != nil {
			return err
		}
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	k := http.TrailerPrefix + textproto.CanonicalMIMEHeaderKey(string(name))
	d.w.Header()[k] = append(d.w.Header()[k], string(wire.TrimOWS(value)))
	return nil
}

func (d *httpDown) End() error {
	d.commit()
	return nil
}

func (d *httpDown) Flush() error {
	d.commit()
	return d.w.flush()
}

func (d *httpDown) Reply(x *core.Exchange, a *filter.Answer, closing bool) error {
	d.Abort() // nothing was sent: drop the upstream head's fields
	writeFilterAnswer(d.w, a, closing)
	return nil
}

func (d *httpDown) Answer(x *core.Exchange, code int, msg string, closing bool) error {
	if closing {
		d.w.Header().Set("Connection", "close")
	}
	writeError(d.w, code, msg)
	return nil
}

// Tunnel takes the client connection from net/http after a 101 and relays
// bytes both ways until either side closes; it returns when both copies
// have ended (the copy towards the upstream runs on a goroutine it owns).
func (d *httpDown) Tunnel(x *core.Exchange) error {
	uc := x.Conn
	conn, brw, err := d.w.hijack()
	if err != nil {
		return &core.ClientError{Err: err}
	}
	defer conn.Close()
	sock.SetRead(uc.Conn, &uc.ReadDeadline, time.Time{})
	sock.SetWrite(uc.Conn, &uc.WriteDeadline, time.Time{})
	conn.SetDeadline(time.Time{})

	r := &x.Resp
	b := wire.AppendStatusLine(nil, r)
	for i := 0; i < r.NFields; i++ {
		f := &r.Fields[i]
		if f.Kind == wire.RespHopByHop {
			if n := wire.Classify(f.Name); n != wire.NameConnection && n != wire.NameUpgrade {
				continue
			}
		}
		b = wire.AppendHeaderLine(b, f.Name, f.Value)
	}
	b = append(b, "\r\n"...)
	b = append(b, x.In[x.InR:x.InW]...) // what the upstream sent after its head
	x.InR = x.InW
	if _, err := conn.Write(b); err != nil {
		return &core.ClientError{Err: err}
	}
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n) // what the client sent after its request
		if _, err := uc.Write(early); err != nil {
			return err
		}
	}
	up := make(chan struct{})
	go func() {
		defer close(up)
		io.Copy(uc.Conn, conn)
		uc.Conn.Close() // the client ended: end the upstream side too
	}()
	n, _ := io.Copy(conn, uc.Conn)
	x.BytesSent += n
	conn.Close() // the upstream ended: end the client side too
	<-up
	return nil
}

// appendHTTPRequest appends the outbound head of a request net/http parsed:
// the canonical path (less the prefix when the route strips it), the query
// byte for byte as sent, the request's authority as Host, the client's fields
// (sorted by name) less hop-by-hop ones, those its Connection header
// nominates and Expect (ferry answers 100-continue itself, as nginx does),
// X-Forwarded-* as in the fast lane, and the body's framing.
func appendHTTPRequest(b []byte, x *core.Exchange, r *http.Request, trusted bool, clientIP string) []byte {
	b = append(b, r.Method...)
	b = append(b, ' ')
	b = appendTarget(b, x)
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		b = append(b, '?')
		b = append(b, r.URL.RawQuery...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...) // the absolute-form target's authority, if any: routed on too
	b = append(b, "\r\n"...)
	var nominated []string
	for _, v := range r.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" {
				nominated = append(nominated, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
	var xfh, xfp bool
	edits := x.RequestEdits()
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		if edits != nil && edits.DroppedString(k) {
			continue
		}
		forwarding := true // kept by trust alone: a client's Connection cannot remove them
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect", "Host", "Http2-Settings":
			continue
		case "X-Forwarded-For", "Forwarded", "X-Real-Ip":
			if !trusted || k == "X-Forwarded-For" {
				continue // X-Forwarded-For is joined below
			}
		case "X-Forwarded-Host":
			if !trusted {
				continue
			}
			xfh = true
		case "X-Forwarded-Proto":
			if !trusted {
				continue
			}
			xfp = true
		case "X-Forwarded-Prefix":
			if !trusted || x.Route.Spec().StripPrefix {
				continue
			}
		default:
			forwarding = false
		}
		if !forwarding && slices.Contains(nominated, k) {
			continue
		}
		for _, v := range r.Header[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	for _, v := range r.Header["Te"] {
		if strings.Contains(strings.ToLower(v), "trailers") {
			b = append(b, "TE: trailers\r\n"...) // end to end: gRPC needs it
			break
		}
	}
	b = append(b, "X-Forwarded-For: "...)
	if trusted && !edits.DroppedString("X-Forwarded-For") {
		for _, v := range r.Header["X-Forwarded-For"] {
			b = append(b, v...)
			b = append(b, ", "...)
		}
	}
	b = append(b, clientIP...)
	b = append(b, "\r\n"...)
	if !xfh {
		b = append(b, "X-Forwarded-Host: "...)
		b = append(b, r.Host...)
		b = append(b, "\r\n"...)
	}
	if !xfp {
		if r.TLS != nil || guardConnFrom(r.Context()).overTLS() {
			b = append(b, "X-Forwarded-Proto: https\r\n"...)
		} else {
			b = append(b, "X-Forwarded-Proto: http\r\n"...)
		}
	}
	b = appendStripped(b, x)
	b = appendAdded(b, edits)
	if x.Upgrade {
		b = append(b, "Connection: Upgrade\r\nUpgrade: websocket\r\n"...)
	}
	if x.BodyChunk {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		if len(r.Trailer) > 0 {
			b = append(b, "Trailer: "...)
			b = append(b, strings.Join(slices.Sorted(maps.Keys(r.Trailer)), ", ")...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// wantsUpgrade reports whether r asks for a WebSocket upgrade (admit has
// dropped any other Upgrade offer).
func wantsUpgrade(r *http.Request) bool {
	if _, ok := r.Header["Upgrade"]; !ok {
		return false
	}
	for _, v := range r.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// writeError answers with a short plain-text body. nosniff keeps a browser
// from reading the echoed path as anything but text.
func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}

package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/sock"
	"github.com/ferry-proxy/ferry/proxy/wire"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// fastDown is the fast lane's downstream: it reads a Content-Length body
// straight from the client connection and writes the response as raw
// HTTP/1.1, buffering the head with a small body so that most responses
// leave in one write (or one writev) through the exchange's scratch
// buffers. One lives in each fastConn; x is the exchange it serves now.
type fastDown struct {
	c        *fastConn
	x        *core.Exchange
	hex      [20]byte
	chunked  bool // the client's body is chunked
	trailing bool // the last chunk was sent, trailer fields follow
	wrote    bool // response bytes were written to the client
}

func (f *fastDown) ReadBody(p []byte) (int, error) {
	c := f.c
	if d := c.s.opts.ReadTimeout; d > 0 {
		sock.SetReadLazy(c.raw, &c.rdl, time.Now().Add(d), sock.ClientDeadlineSlack)
	}
	n, err := c.raw.Read(p)
	if err != nil && n == 0 && err != io.EOF {
		return 0, err
	}
	return n, err
}

func (f *fastDown) RequestTrailers(b []byte) []byte { return b } // no chunked uploads here

// InterruptBody ends a body read in progress on another goroutine (the h2
// upstream client's pump, core.BodyInterrupter). The deadline is set
// straight on the socket, not through c.rdl, which only ReadBody's
// goroutine touches: the connection closes after this answer anyway, its
// body left unread.
func (f *fastDown) InterruptBody() { f.c.raw.SetReadDeadline(time.Now()) }

func (f *fastDown) Gone() bool { return f.c.Peek() == sock.PeekClosed }

// closing reports whether the client connection ends after this response.
func (f *fastDown) closing(x *core.Exchange) bool {
	return x.ClientStop || x.BodyUnread || f.c.s.done.Load()
}

func (f *fastDown) Informational(x *core.Exchange) error {
	f.wrote = true
	b := wire.AppendStatusLine(f.x.Out[:0], &x.Resp)
	b = wire.AppendFields(b, &x.Resp, false, false, nil)
	b = append(b, "\r\n"...)
	err := f.c.write(b)
	f.x.Out = b[:0]
	return err
}

// Head queues the final head. The client gets the body chunked when the
// upstream's is chunked or delimited by its close (so that the client's
// connection lives on); a HEAD answer keeps the framing fields a GET would
// get; 204 and 304 get no Transfer-Encoding, and 204 no Content-Length
// (RFC 9110 §8.6, RFC 9112 §6.1).
func (f *fastDown) Head(x *core.Exchange) error {
	r := &x.Resp
	isHead := x.Method == http.MethodHead
	noBody := isHead || r.Status == http.StatusNoContent || r.Status == http.StatusNotModified
	f.chunked = !noBody && (r.Chunked || r.ContentLength < 0 || x.LengthChanged)
	f.trailing, f.wrote = false, false
	// A HEAD answer mirrors a GET's framing fields, unless its status has
	// no body at all.
	headChunked := isHead && r.Chunked && r.Status != http.StatusNoContent && r.Status != http.StatusNotModified
	b := wire.AppendStatusLine(f.x.Out[:0], r)
	var drop wire.Dropper
	if !x.RespEdits.Empty() {
		drop = &x.RespEdits
	}
	b = wire.AppendFields(b, r, f.chunked || headChunked, r.Status != http.StatusNoContent && !x.LengthChanged, drop)
	b = appendAdded(b, &x.RespEdits)
	if !respHasRequestID(x) {
		b = wire.AppendHeaderLine(b, requestIDName, f.c.reqID)
	}
	if !r.HasDate {
		b = append(b, "Date: "...)
		b = append(b, wire.HTTPDate(x.Start)...)
		b = append(b, "\r\n"...)
	}
	if f.chunked || headChunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if f.closing(x) {
		b = append(b, "Connection: close\r\n"...)
	}
	f.x.Out = append(b, "\r\n"...)
	return nil
}

func (f *fastDown) Data(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if f.chunked {
		size := strconv.AppendInt(f.hex[:0], int64(len(p)), 16)
		if err := f.emit(append(size, "\r\n"...)); err != nil {
			return err
		}
		if err := f.emit(p); err != nil {
			return err
		}
		return f.emit(wire.CRLF)
	}
	return f.emit(p)
}

func (f *fastDown) Trailer(line []byte) error {
	if !f.chunked {
		return nil // a client body with a length carries no trailers
	}
	if !f.trailing {
		f.trailing = true
		if err := f.emit(wire.LastChunkHead); err != nil {
			return err
		}
	}
	if err := f.emit(line); err != nil {
		return err
	}
	return f.emit(wire.CRLF)
}

func (f *fastDown) End() error {
	if f.chunked {
		if !f.trailing {
			if err := f.emit(wire.LastChunkHead); err != nil {
				return err
			}
		}
		if err := f.emit(wire.CRLF); err != nil {
			return err
		}
	}
	return f.Flush()
}

// Flush sends f.x.out to the client.
func (f *fastDown) Flush() error {
	if len(f.x.Out) == 0 {
		return nil
	}
	err := f.c.write(f.x.Out)
	f.x.Out = f.x.Out[:0]
	f.wrote = true
	return err
}

func (f *fastDown) Abort() bool {
	if f.wrote {
		return false
	}
	f.x.Out = f.x.Out[:0]
	return true
}

// emit queues p for the client, writing directly what would not fit.
func (f *fastDown) emit(p []byte) error {
	if len(f.x.Out)+len(p) <= cap(f.x.Out) {
		f.x.Out = append(f.x.Out, p...)
		return nil
	}
	err := f.c.writev(&f.x.IOV, f.x.Out, p)
	f.x.Out = f.x.Out[:0]
	f.wrote = true
	return err
}

func (f *fastDown) Answer(x *core.Exchange, code int, msg string, closing bool) error {
	extra := append(append(append(f.c.extra[:0], "X-Request-Id: "...), f.c.reqID...), "\r\n"...)
	f.c.extra = extra
	f.x.Out = wire.AppendErrorResponse(f.x.Out[:0], code, msg, extra, closing || f.closing(x), x.Method == http.MethodHead, time.Now())
	return f.Flush()
}

func (f *fastDown) Reply(x *core.Exchange, a *filter.Answer, closing bool) error {
	extra := append(append(append(f.c.extra[:0], "X-Request-Id: "...), f.c.reqID...), "\r\n"...)
	f.c.extra = extra
	f.x.Out = wire.AppendAnswer(f.x.Out[:0], a.Status, a.Header, a.Body, extra, closing || f.closing(x), x.Method == http.MethodHead, time.Now())
	return f.Flush()
}

var errNoTunnel = errors.New("the fast lane tunnels nothing")

// Tunnel is never reached: the fast lane hands upgrades to net/http.
func (f *fastDown) Tunnel(x *core.Exchange) error { return errNoTunnel }

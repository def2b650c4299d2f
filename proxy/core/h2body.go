package core

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"sync"

	"github.com/ferry-proxy/ferry/proxy/wire"
)

// h2Body is one attempt's request body as the HTTP/2 transport reads it,
// on its own goroutine, while the exchange's goroutine waits for the
// response and relays it: first the body bytes that came with the head,
// then the client's through Downstream.ReadBody, and its trailers.
//
// The exchange stays the owner: stop, called before the exchange moves on
// (another attempt, its answer, its release), makes every later Read fail
// and waits for a Read in progress to return, so that nothing reads the
// client once the exchange is done with it. Close, which the transport may
// call late on its own goroutine, changes nothing.
type h2Body struct {
	h *h2Exchange
	x *Exchange

	mu        sync.Mutex
	held      []byte // bytes that came with the head, still to send
	left      int64  // client body bytes still to read; -1 until EOF
	stopped   bool
	reading   bool
	woken     chan struct{} // closed when the Read stop waits for returns
	read      bool          // a client byte was read: the body cannot be sent again
	sent      bool          // EOF reached: response_timeout is armed
	clientErr error         // *ClientBodyError: the client's body failed
	trailer   http.Header   // the request's trailers, announced: filled at EOF
}

var errBodyStopped = errors.New("request body: attempt over")

func newH2Body(h *h2Exchange, x *Exchange) *h2Body {
	b := &h2Body{h: h, x: x, held: h.tmpl.bodyHead, left: x.BodyLeft}
	if h.tmpl.length == 0 {
		b.sent = true // no body: the transport reads none
		h.bodySent()
	}
	return b
}

func (b *h2Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return 0, errBodyStopped
	}
	if len(b.held) > 0 {
		n := copy(p, b.held)
		b.held = b.held[n:]
		b.mu.Unlock()
		return n, nil
	}
	if b.left == 0 {
		b.ended()
		b.mu.Unlock()
		return 0, io.EOF
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left] // never past the body: the next request may follow it
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.x.d.ReadBody(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	if b.woken != nil {
		close(b.woken)
		b.woken = nil
	}
	if n > 0 {
		b.read = true
		if b.left > 0 {
			b.left -= int64(n)
		}
	}
	switch {
	case err == io.EOF && b.left <= 0:
		b.left = 0
		b.trailers()
		b.ended()
		return n, io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
		fallthrough
	case err != nil:
		if b.stopped {
			return n, errBodyStopped
		}
		b.clientErr = &ClientBodyError{Err: err}
		return n, b.clientErr
	}
	return n, nil
}

// ended notes that the whole body went: the response wait starts.
func (b *h2Body) ended() {
	if !b.sent {
		b.sent = true
		b.h.bodySent()
	}
}

// trailers fills the announced request trailers from the client's.
func (b *h2Body) trailers() {
	if b.trailer == nil {
		return
	}
	for line := range bytes.SplitSeq(b.x.d.RequestTrailers(nil), []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		k := textproto.CanonicalMIMEHeaderKey(string(name))
		if _, announced := b.trailer[k]; announced {
			b.trailer[k] = append(b.trailer[k], string(wire.TrimOWS(value)))
		}
	}
}

func (b *h2Body) Close() error { return nil }

// stop ends the body for the transport and reports whether a client byte
// was read and whether the whole body was.
func (b *h2Body) stop() (read, eof bool) {
	b.mu.Lock()
	b.stopped = true
	if b.reading {
		woken := make(chan struct{})
		b.woken = woken
		b.mu.Unlock()
		if bi, ok := b.x.d.(BodyInterrupter); ok {
			bi.InterruptBody()
		}
		<-woken
		b.mu.Lock()
	}
	read, eof = b.read, b.left == 0
	b.mu.Unlock()
	return read, eof
}

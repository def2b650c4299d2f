package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// exchange is one fast-lane request on its way to an upstream and back. It is
// pooled with its buffers; only the client connection's goroutine uses it.
type exchange struct {
	c     *fastConn
	start time.Time // the request's arrival: the clock for its first attempt
	h     *reqHead
	route *Route
	svc   *Service
	path  string // canonical

	bodyHead []byte // the part of the request body read with the head
	bodyLeft int64  // body bytes still to read from the client
	bodyRead bool   // a body byte beyond bodyHead was consumed: no replay
	relayed  bool   // a 1xx head reached the client: no retry

	req []byte // the outbound head and bodyHead

	upstream  *Upstream // the last attempt's
	uc        *upConn   // the connection the response comes on
	leased    *Upstream // holds the instance's in-flight count
	attempts  int
	retries   int
	status    int
	bytesSent int64

	resp     respHead
	in       []byte // upstream bytes: in[inR:inW] unread; small, or big while moving a large body
	inR, inW int
	small    []byte           // the exchange's own input buffer
	big      *[bigInSize]byte // borrowed from bigIns; nil when in is small
	out      []byte           // what goes to the client next
	iov      net.Buffers
	hex      [20]byte // a chunk-size line
}

var (
	crlfBytes     = []byte("\r\n")
	lastChunkHead = []byte("0\r\n")
	lastChunk     = []byte("0\r\n\r\n")
)

const (
	// smallInSize holds a response head and a small body: what an
	// exchange keeps while it waits (a long poll, an event stream).
	smallInSize = 8 << 10
	// bigInSize is borrowed to move a large body: a loopback read then
	// takes 64 KiB at once (a 64 KiB response costs two reads and two
	// writes either way).
	bigInSize       = 64 << 10
	exchangeOutSize = 8 << 10 // a response head and a small body; req grows beyond
	// smallBody is copied after the head into one write; a larger one goes
	// out with the head in one writev.
	smallBody = 4 << 10
)

var bigIns = sync.Pool{New: func() any { return new([bigInSize]byte) }}

func newExchange() *exchange {
	x := &exchange{
		req:   make([]byte, 0, exchangeOutSize),
		small: make([]byte, smallInSize),
		out:   make([]byte, 0, exchangeOutSize),
		iov:   make(net.Buffers, 0, 2),
	}
	x.in = x.small
	return x
}

// grow moves the unread input to a borrowed 64 KiB buffer, once per
// exchange: for a head larger than the small buffer, a large body, or a
// streamed request body.
func (x *exchange) grow() {
	if x.big != nil {
		return
	}
	x.big = bigIns.Get().(*[bigInSize]byte)
	x.inW = copy(x.big[:], x.in[x.inR:x.inW])
	x.inR = 0
	x.in = x.big[:]
}

// shrink returns the borrowed buffer; the exchange must hold no unread
// input it still needs.
func (x *exchange) shrink() {
	if x.big != nil {
		bigIns.Put(x.big)
		x.big = nil
	}
	x.in, x.inR, x.inW = x.small, 0, 0
}

func (x *exchange) reset(c *fastConn, start time.Time, h *reqHead, route *Route, path string) {
	x.c, x.start, x.h, x.route, x.svc, x.path = c, start, h, route, route.service, path
	x.bodyHead, x.bodyLeft, x.bodyRead, x.relayed = nil, 0, false, false
	x.upstream, x.uc, x.leased = nil, nil, nil
	x.attempts, x.retries, x.status, x.bytesSent = 0, 0, 0, 0
	x.shrink()
	x.out = x.out[:0]
}

// release returns what the exchange still holds (an exchange that ended in
// an error may hold a connection or a lease).
func (x *exchange) release() {
	if x.uc != nil {
		x.uc.Conn.Close()
		x.uc = nil
	}
	x.unlease()
	x.shrink()
	x.c, x.h, x.route, x.svc, x.upstream, x.bodyHead = nil, nil, nil, nil, nil, nil
}

func (x *exchange) unlease() {
	if x.leased != nil {
		x.leased.state.Release()
		x.leased = nil
	}
}

// Errors of the fast lane's upstream exchange.
var (
	errBadResponse      = errors.New("malformed response from upstream")
	errResponseTooLarge = errors.New("upstream response head too large")
	errUnexpected101    = errors.New("upstream switched protocols unasked")
	errTooMany1xx       = errors.New("too many 1xx responses from upstream")
)

// clientError marks a failure of the client's side while forwarding.
type clientError struct{ err error }

func (e *clientError) Error() string { return "client: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// forward sends the request to up and, on failures that allow it, to other
// instances, then relays the response. It reports whether the client
// connection may serve another request.
func (x *exchange) forward(up *Upstream) bool {
	x.buildRequest()
	svc := x.svc
	for {
		x.attempts++
		x.upstream = up
		err := x.attempt(up)
		if err == nil {
			return x.relay()
		}
		if ce, ok := errors.AsType[*ClientBodyError](err); ok {
			return x.clientBodyFailed(ce)
		}
		if err == errClientGone {
			x.unlease()
			x.status = statusClientClosed
			return false
		}
		if x.attempts > svc.spec.Retries || x.bodyRead || x.relayed || !x.retryable(err) {
			return x.upstreamFailed(err)
		}
		next := svc.balancer.pick(svc.upstreams, up)
		if next == nil || next == up || !svc.budget.tryRetry() {
			return x.upstreamFailed(err)
		}
		x.retries++
		up = next
	}
}

// retryable is retryable (transport.go) for the fast lane's requests.
func (x *exchange) retryable(err error) bool {
	if _, ok := errors.AsType[*DialError](err); ok {
		return true
	}
	if isTimeout(err) || x.h.contentLength > 0 {
		return false
	}
	switch x.h.method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// attempt exchanges the request with one instance up to the response head.
// On success x.uc is the connection and x.resp the head; the instance's
// lease is held until the response is relayed.
func (x *exchange) attempt(up *Upstream) error {
	x.unlease()
	up.state.Acquire()
	x.leased = up
	spec := &x.svc.spec
	now := x.start // one clock read per request, not per step
	if x.attempts > 1 {
		now = time.Now()
	}
	uc := up.pool.get(now)
	reused := uc != nil
	if reused && x.bodyLeft > 0 && !alive(uc) {
		// A streamed body cannot be replayed: make sure the idle
		// connection was not closed by the upstream in the meantime.
		uc.Conn.Close()
		uc, reused = nil, false
	}
	for {
		if uc == nil {
			var err error
			if uc, err = up.pool.dial(context.Background(), spec.ConnectTimeout); err != nil {
				x.svc.attemptDone(up, 0, err, now)
				return err
			}
		}
		stale, err := x.exchangeHead(uc, reused, now)
		if err == nil {
			x.uc = uc
			x.svc.attemptDone(up, x.resp.status, nil, now)
			return nil
		}
		uc.Conn.Close()
		if stale {
			// The upstream closed an idle connection as it was reused
			// (nothing of the request was processed): once more on a new
			// one, as http.Transport does.
			uc, reused = nil, false
			continue
		}
		if _, ok := errors.AsType[*ClientBodyError](err); !ok && err != errClientGone {
			x.svc.attemptDone(up, 0, err, now)
		}
		return err
	}
}

// peekState is what a non-blocking peek at a connection found.
type peekState uint8

const (
	peekQuiet  peekState = iota // open, nothing to read
	peekData                    // bytes waiting
	peekClosed                  // the peer closed or reset it
)

// peek looks at c's receive queue without blocking or consuming anything.
func peek(c net.Conn, rdl *time.Time) peekState {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peekQuiet
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekClosed
	}
	// RawConn.Read fails at once past a read deadline (a pooled
	// connection keeps its last one): every caller sets its own next.
	setRead(c, rdl, time.Time{})
	st := peekClosed
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN:
			st = peekQuiet
		case err == nil && n > 0:
			st = peekData
		}
		return true
	})
	return st
}

// alive reports whether an idle upstream connection is still open and
// quiet (bytes it was not asked for put it out of step).
func alive(uc *upConn) bool { return peek(uc.Conn, &uc.rdl) == peekQuiet }

// clientCheckInterval is how often a request waiting for its response head
// checks that its client is still there, as net/http's background read
// does, so that a long poll whose client left is cancelled upstream.
const clientCheckInterval = 500 * time.Millisecond

// errClientGone ends an exchange whose client closed its connection before
// the response head came: nobody to answer (logged 499), no fault of the
// upstream's.
var errClientGone = errors.New("client went away before the upstream answered")

// exchangeHead writes the request on uc and reads the response head into
// x.resp, relaying 1xx heads. stale reports a reused connection that failed
// before anything of the request could have been processed.
func (x *exchange) exchangeHead(uc *upConn, reused bool, now time.Time) (stale bool, err error) {
	if _, err := uc.Write(x.req); err != nil {
		return reused, err
	}
	if x.bodyLeft > 0 {
		if err := x.streamBody(uc); err != nil {
			return false, err
		}
	}
	if x.bodyRead {
		now = time.Now() // streaming the body took time
	}
	deadline := now.Add(x.svc.spec.ResponseTimeout)
	slice := nextSlice(now, deadline)
	setReadLazy(uc.Conn, &uc.rdl, slice, slice.Sub(now)/8)
	x.inR, x.inW = 0, 0
	informational := 0
	for {
		complete, perr := parseResponse(x.in[x.inR:x.inW], &x.resp)
		if perr != nil {
			return false, perr
		}
		if complete {
			st := x.resp.status
			if st >= 200 {
				x.inR += x.resp.size
				return false, nil
			}
			if st == http.StatusSwitchingProtocols {
				return false, errUnexpected101
			}
			if informational++; informational > 5 {
				return false, errTooMany1xx
			}
			x.relayInformational()
			x.inR += x.resp.size
			continue
		}
		if x.inR > 0 {
			x.inW = copy(x.in, x.in[x.inR:x.inW])
			x.inR = 0
		}
		if x.inW == len(x.in) {
			if x.big != nil {
				return false, errResponseTooLarge
			}
			x.grow()
		}
		n, err := uc.Read(x.in[x.inW:])
		x.inW += n
		if n == 0 && err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if now := time.Now(); now.Before(deadline) {
					// A slice ended (or a lazily armed deadline came
					// early): is the client still there?
					if peek(x.c.raw, &x.c.rdl) == peekClosed {
						return false, errClientGone
					}
					setRead(uc.Conn, &uc.rdl, nextSlice(now, deadline))
					continue
				}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return reused && x.inW == 0 && !x.bodyRead && informational == 0, err
		}
	}
}

// nextSlice is the end of the next wait for a response head.
func nextSlice(now, deadline time.Time) time.Time {
	if s := now.Add(clientCheckInterval); s.Before(deadline) {
		return s
	}
	return deadline
}

// streamBody copies the rest of the request body from the client to uc.
func (x *exchange) streamBody(uc *upConn) error {
	c := x.c
	x.grow()
	for left := x.bodyLeft; left > 0; {
		if d := c.s.opts.ReadTimeout; d > 0 {
			setReadLazy(c.raw, &c.rdl, time.Now().Add(d), clientDeadlineSlack)
		}
		n, err := c.raw.Read(x.in[:min(left, int64(len(x.in)))])
		if n > 0 {
			x.bodyRead = true
			left -= int64(n)
			setWriteLazy(uc.Conn, &uc.wdl, time.Now().Add(x.svc.spec.ResponseTimeout), clientDeadlineSlack)
			if _, werr := uc.Write(x.in[:n]); werr != nil {
				return werr
			}
		}
		if err != nil && left > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &ClientBodyError{Err: err}
		}
	}
	setWrite(uc.Conn, &uc.wdl, time.Time{})
	x.bodyLeft = 0
	x.shrink() // before the response: nothing of it is in the buffer yet
	return nil
}

// relayInformational sends a 1xx head (hop-by-hop fields removed) to the
// client at once. A client that cannot take it will fail the final write.
func (x *exchange) relayInformational() {
	b := x.appendStatusLine(x.out[:0])
	b = x.appendFields(b, false)
	b = append(b, "\r\n"...)
	x.relayed = true
	x.c.write(b)
	x.out = b[:0]
}

// buildRequest writes the outbound head into x.req: the canonical path (less
// the prefix when the route strips it), the query as sent, the client's
// fields less hop-by-hop ones, and X-Forwarded-* (replaced unless the peer is
// a trusted proxy; see Edge.setForwarded), followed by the body read so far.
func (x *exchange) buildRequest() {
	h := x.h
	b := append(x.req[:0], h.method...)
	b = append(b, ' ')
	path := x.path
	if x.route.spec.StripPrefix {
		path = stripPrefix(path, x.route.spec.PathPrefix)
	}
	b = append(b, path...)
	if h.hasQuery {
		b = append(b, '?')
		b = append(b, h.query...)
	}
	b = append(b, " HTTP/1.1\r\n"...)
	trusted := x.c.isTrusted()
	var xff, xfh, xfp bool
	for i := 0; i < h.nfields; i++ {
		f := &h.fields[i]
		switch f.kind {
		case fieldHopByHop:
			continue
		case fieldForwarded:
			if !trusted {
				continue
			}
			switch len(f.name) {
			case len("X-Forwarded-For"):
				xff = true
				continue // joined below
			case len("X-Forwarded-Host"):
				xfh = true
			case len("X-Forwarded-Proto"):
				xfp = true
			}
		}
		b = appendHeaderLine(b, f.name, f.value)
	}
	b = append(b, "X-Forwarded-For: "...)
	if xff {
		for i := 0; i < h.nfields; i++ {
			if f := &h.fields[i]; f.kind == fieldForwarded && len(f.name) == len("X-Forwarded-For") {
				b = append(b, f.value...)
				b = append(b, ", "...)
			}
		}
	}
	b = append(b, x.c.clientIP...)
	b = append(b, "\r\n"...)
	if !xfh {
		b = appendHeaderLine(b, []byte("X-Forwarded-Host"), h.host)
	}
	if !xfp {
		b = append(b, "X-Forwarded-Proto: http\r\n"...)
	}
	b = append(b, "\r\n"...)
	x.req = append(b, x.bodyHead...)
}

func appendHeaderLine(b, name, value []byte) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}

// relay sends the response whose head is in x.resp to the client, with its
// body, and returns the upstream connection to its pool when the exchange
// left it clean. It reports whether the client connection may go on.
func (x *exchange) relay() bool {
	r := &x.resp
	x.status = r.status
	closing := x.h.close || x.c.s.done.Load()
	noBody := x.h.method == http.MethodHead || r.status == http.StatusNoContent || r.status == http.StatusNotModified
	rechunk := !noBody && (r.chunked || r.contentLength < 0)

	b := x.appendStatusLine(x.out[:0])
	b = x.appendFields(b, r.chunked || x.h.method == http.MethodHead)
	if !r.hasDate {
		b = append(b, "Date: "...)
		b = append(b, httpDate(x.start)...)
		b = append(b, "\r\n"...)
	}
	if rechunk || noBody && r.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if closing {
		b = append(b, "Connection: close\r\n"...)
	}
	x.out = append(b, "\r\n"...)

	upstreamClean := !r.close && !r.http10
	var err error
	switch {
	case noBody:
		upstreamClean = upstreamClean && x.inR == x.inW
		err = x.flush()
	case r.chunked:
		err = x.relayChunked()
	case r.contentLength >= 0:
		err = x.relayLength(r.contentLength)
		upstreamClean = upstreamClean && x.inR == x.inW
	default:
		err = x.relayUntilClose()
		upstreamClean = false
	}
	if err != nil {
		x.bodyFailed(err)
		return false
	}
	uc := x.uc
	x.uc = nil
	x.unlease()
	if upstreamClean {
		uc.pool.put(uc, x.start) // an idle age a response's time too old errs on the safe side
	} else {
		uc.Conn.Close()
	}
	return !closing
}

// bodyFailed handles a failure after the response head went out: too late
// for an error page, so both connections close and the client sees a
// truncated response.
func (x *exchange) bodyFailed(err error) {
	if _, ok := errors.AsType[*clientError](err); ok {
		return // the client went away: nobody to tell, no fault of the upstream's
	}
	x.svc.logger.Warn("upstream failed after the response started", "route", x.route.spec.Name,
		"address", x.upstream.addr, "instance_id", x.upstream.instance.ID, "error", err)
}

func (x *exchange) appendStatusLine(b []byte) []byte {
	r := &x.resp
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, ' ')
	if len(r.reason) > 0 {
		return append(append(b, r.reason...), "\r\n"...)
	}
	if t := http.StatusText(r.status); t != "" {
		b = append(b, t...)
	}
	return append(b, "\r\n"...)
}

// appendFields appends the response's end-to-end fields; Trailer only with
// a chunked body, Content-Length only without one.
func (x *exchange) appendFields(b []byte, chunked bool) []byte {
	r := &x.resp
	for i := 0; i < r.nfields; i++ {
		f := &r.fields[i]
		switch f.kind {
		case respHopByHop:
			continue
		case respTrailer:
			if !chunked {
				continue
			}
		case respLength:
			if r.chunked {
				continue
			}
		}
		b = appendHeaderLine(b, f.name, f.value)
	}
	return b
}

// flush sends x.out to the client.
func (x *exchange) flush() error {
	if len(x.out) == 0 {
		return nil
	}
	err := x.c.write(x.out)
	x.out = x.out[:0]
	if err != nil {
		return &clientError{err}
	}
	return nil
}

// emit queues p (body bytes, already framed) for the client, writing
// directly what would not fit.
func (x *exchange) emit(p []byte) error {
	if len(x.out)+len(p) <= cap(x.out) {
		x.out = append(x.out, p...)
		return nil
	}
	err := x.c.writev(&x.iov, x.out, p)
	x.out = x.out[:0]
	if err != nil {
		return &clientError{err}
	}
	return nil
}

// more reads more upstream bytes into x.in, first sending what is queued for
// the client (the read may block: a streamed response reaches the client as
// it comes). It keeps unread bytes.
func (x *exchange) more() error {
	if err := x.flush(); err != nil {
		return err
	}
	if x.inR == x.inW {
		x.inR, x.inW = 0, 0
	} else if x.inR > 0 {
		x.inW = copy(x.in, x.in[x.inR:x.inW])
		x.inR = 0
	}
	if x.inW == len(x.in) {
		return errBadResponse
	}
	n, err := x.uc.Read(x.in[x.inW:])
	x.inW += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// bodyStarted lifts the response timeout: it bounds the head only, as
// http.Transport's ResponseHeaderTimeout does.
func (x *exchange) bodyStarted() { setRead(x.uc.Conn, &x.uc.rdl, time.Time{}) }

// relayLength relays a body of n bytes.
func (x *exchange) relayLength(n int64) error {
	avail := int64(x.inW - x.inR)
	if avail >= n {
		body := x.in[x.inR : x.inR+int(n)]
		x.inR += int(n)
		x.bytesSent = n
		if n <= smallBody {
			x.out = append(x.out, body...)
			return x.flush()
		}
		err := x.c.writev(&x.iov, x.out, body)
		x.out = x.out[:0]
		if err != nil {
			return &clientError{err}
		}
		return nil
	}
	x.bodyStarted()
	if n-avail > int64(len(x.small)) {
		x.grow()
	}
	for n > 0 {
		if x.inR == x.inW {
			if err := x.more(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := min(int64(x.inW-x.inR), n)
		if err := x.emit(x.in[x.inR : x.inR+int(k)]); err != nil {
			return err
		}
		x.inR += int(k)
		n -= k
		x.bytesSent += k
	}
	return x.flush()
}

// relayChunked relays a chunked body chunk by chunk, re-framed (extensions
// dropped) and checked, with its trailer fields.
func (x *exchange) relayChunked() error {
	x.bodyStarted()
	for {
		line, err := x.line()
		if err != nil {
			return err
		}
		size, ok := chunkSize(line)
		if !ok {
			return errBadResponse
		}
		if size == 0 {
			if err := x.emit(lastChunkHead); err != nil {
				return err
			}
			for {
				line, err := x.line()
				if err != nil {
					return err
				}
				if len(line) == 0 {
					break
				}
				colon := bytes.IndexByte(line, ':')
				if colon <= 0 || !isResponseToken(line[:colon]) || !validValue(line[colon+1:]) {
					return errBadResponse
				}
				if err := x.emit(line); err != nil {
					return err
				}
				if err := x.emit(crlfBytes); err != nil {
					return err
				}
			}
			if err := x.emit(crlfBytes); err != nil {
				return err
			}
			return x.flush()
		}
		head := strconv.AppendInt(x.hex[:0], size, 16)
		if err := x.emit(append(head, "\r\n"...)); err != nil {
			return err
		}
		if size-int64(x.inW-x.inR) > int64(len(x.small)) {
			x.grow()
		}
		for size > 0 {
			if x.inR == x.inW {
				if err := x.more(); err != nil {
					return unexpected(err)
				}
			}
			k := min(int64(x.inW-x.inR), size)
			if err := x.emit(x.in[x.inR : x.inR+int(k)]); err != nil {
				return err
			}
			x.inR += int(k)
			size -= k
			x.bytesSent += k
		}
		if line, err := x.line(); err != nil {
			return err
		} else if len(line) != 0 {
			return errBadResponse
		}
		if err := x.emit(crlfBytes); err != nil {
			return err
		}
	}
}

// relayUntilClose relays a body delimited by the upstream closing the
// connection, chunked for the client so that its connection lives on.
func (x *exchange) relayUntilClose() error {
	x.bodyStarted()
	for {
		if n := x.inW - x.inR; n > 0 {
			head := strconv.AppendInt(x.hex[:0], int64(n), 16)
			if err := x.emit(append(head, "\r\n"...)); err != nil {
				return err
			}
			if err := x.emit(x.in[x.inR:x.inW]); err != nil {
				return err
			}
			if err := x.emit(crlfBytes); err != nil {
				return err
			}
			x.bytesSent += int64(n)
			x.inR = x.inW
		}
		if err := x.more(); err != nil {
			if err == io.EOF {
				if err := x.emit(lastChunk); err != nil {
					return err
				}
				return x.flush()
			}
			return err
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// maxChunkLine bounds a chunk-size or trailer line.
const maxChunkLine = 4 << 10

// line returns the next line of the upstream's chunked framing without its
// CRLF (or bare LF, which net/http accepts too). It is valid until the next
// read.
func (x *exchange) line() ([]byte, error) {
	for {
		if i := bytes.IndexByte(x.in[x.inR:x.inW], '\n'); i >= 0 {
			l := x.in[x.inR : x.inR+i]
			x.inR += i + 1
			if n := len(l); n > 0 && l[n-1] == '\r' {
				l = l[:n-1]
			}
			return l, nil
		}
		if x.inW-x.inR >= maxChunkLine {
			return nil, errBadResponse
		}
		if err := x.more(); err != nil {
			return nil, unexpected(err)
		}
	}
}

// upstreamFailed answers a request whose last attempt failed: 504 for a
// timeout, else 502, as proxyError does for the Handler.
func (x *exchange) upstreamFailed(err error) bool {
	x.unlease()
	log := x.svc.logger.With("route", x.route.spec.Name, "address", x.upstream.addr,
		"instance_id", x.upstream.instance.ID, "attempts", x.attempts, "error", err)
	code, msg := http.StatusBadGateway, "ferry: upstream of service "+quote(x.svc.name)+" failed"
	if isTimeout(err) {
		log.Warn("upstream timed out")
		code, msg = http.StatusGatewayTimeout, "ferry: upstream of service "+quote(x.svc.name)+" timed out"
	} else {
		log.Warn("upstream failed")
	}
	// With client body bytes still unread the connection's framing is lost:
	// answer and close.
	return x.answer(code, msg, x.h.close || x.c.s.done.Load() || x.bodyLeft > 0)
}

// clientBodyFailed answers a request whose body could not be read from the
// client (see clientBodyFailed in errors.go): 408 after a pause longer than
// read_timeout, else 400; the connection closes, its framing being lost.
func (x *exchange) clientBodyFailed(ce *ClientBodyError) bool {
	x.unlease()
	x.svc.logger.Debug("client request body failed", "route", x.route.spec.Name, "error", ce)
	code, msg := http.StatusBadRequest, "ferry: bad request body"
	if isTimeout(ce.Err) {
		code, msg = http.StatusRequestTimeout, "ferry: timed out reading the request body"
	}
	x.answer(code, msg, true)
	return false
}

// answer writes a fast-lane error response.
func (x *exchange) answer(code int, msg string, closing bool) bool {
	x.status = code
	x.bytesSent = int64(len(msg) + 1)
	x.out = appendErrorResponse(x.out[:0], code, msg, closing, time.Now())
	if x.flush() != nil {
		return false
	}
	return !closing
}

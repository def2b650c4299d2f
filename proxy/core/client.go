package core

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/sock"
	"github.com/ferry-proxy/ferry/proxy/upstream"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// ferry's HTTP/1.1 upstream client: one attempt of an exchange on one
// instance, from a pooled (or new) connection to the response head. Its
// reuse rules are net/http Transport's:
//   - a pooled connection is reused only if it is quiet: nothing to read (no
//     bytes the upstream sent unasked or late, no EOF); otherwise it is
//     closed ("Unsolicited response received on idle HTTP channel");
//   - a reused connection that fails before any response byte is reported as
//     a staleConnError, for the attempt policy to judge (policy.go);
//   - a response timeout is a timeout, never a stale connection.

// staleConnError is a failure of a reused connection before any byte of a
// response: the upstream had most likely closed it while it was idle.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string {
	return "reused upstream connection closed: " + e.err.Error()
}
func (e *staleConnError) Unwrap() error { return e.err }

// errResponseTimeout is the response_timeout: a net.Error whose Timeout is
// true, so that it maps to 504.
var errResponseTimeout error = &timeoutError{}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "no response head within response_timeout" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return true }

// attempt exchanges the request with one instance up to the response head.
// On success x.uc is the connection and x.resp the head; the instance's
// lease is held until the response is relayed.
func (x *Exchange) attempt(up *route.Upstream) error {
	x.unlease()
	up.Health.Acquire()
	x.leased = up
	spec := x.Service.Spec()
	now := x.Start // one clock read per request, not per step
	if x.Attempts > 1 {
		now = time.Now()
	}
	uc := up.Pool.Get(now)
	for uc != nil && !upstream.Alive(uc) {
		uc.Conn.Close() // closed by the upstream, or out of step: never reused
		uc = up.Pool.Get(now)
	}
	reused := uc != nil
	for {
		if uc == nil {
			var err error
			if uc, err = up.Pool.Dial(context.Background(), spec.ConnectTimeout); err != nil {
				x.Service.AttemptDone(up, 0, err, now)
				return err
			}
		}
		err := x.exchangeHead(uc, reused, now)
		if err == nil {
			x.Conn = uc
			x.Service.AttemptDone(up, x.Resp.Status, nil, now)
			return nil
		}
		uc.Conn.Close()
		if _, ok := errors.AsType[*staleConnError](err); ok && decide(x.facts(err)) == retryFresh {
			uc, reused = nil, false
			continue
		}
		if _, ok := errors.AsType[*ClientBodyError](err); !ok && !errors.Is(err, errClientGone) {
			x.Service.AttemptDone(up, 0, err, now)
		}
		return err
	}
}

// ClientCheckInterval is how often a request waiting on its upstream (for
// the response head, or for more of a quiet body) checks that its client is
// still there, as net/http's background read does, so that a long poll or
// an event stream whose client left is closed upstream.
const ClientCheckInterval = 500 * time.Millisecond

// exchangeHead writes the request on uc and reads the response head into
// x.resp, relaying 1xx heads.
func (x *Exchange) exchangeHead(uc *upstream.Conn, reused bool, now time.Time) error {
	deadline := now.Add(x.Service.Spec().ResponseTimeout)
	x.InR, x.InW = 0, 0
	first, err := x.sendRequest(uc, now, deadline)
	if err != nil {
		if reused {
			return &staleConnError{err}
		}
		return err
	}
	var sendErr error // the upstream stopped taking the body: it may have answered early
	if x.BodyLeft != 0 {
		if err := x.streamBody(uc); err != nil {
			if _, ok := errors.AsType[*ClientBodyError](err); ok {
				return err
			}
			sendErr = err
		}
	}
	if x.bodyRead {
		now = time.Now() // streaming the body took time
		deadline = now.Add(x.Service.Spec().ResponseTimeout)
	}
	if !first.valid {
		armResponseWait(uc, now, deadline)
	}
	informational := 0
	for {
		complete, perr := wire.ParseResponseHead(x.In[x.InR:x.InW], &x.Resp)
		if perr != nil {
			return perr
		}
		if complete {
			st := x.Resp.Status
			if st >= 200 {
				x.InR += x.Resp.Size
				return nil
			}
			if st == 101 {
				if !x.Upgrade {
					return errUnexpected101
				}
				x.InR += x.Resp.Size
				return nil
			}
			if informational++; informational > 5 {
				return errTooMany1xx
			}
			x.relayed = true
			if err := x.d.Informational(x); err != nil {
				return &ClientError{err}
			}
			x.InR += x.Resp.Size
			continue
		}
		if x.InR > 0 {
			x.InW = copy(x.In, x.In[x.InR:x.InW])
			x.InR = 0
		}
		if x.InW == len(x.In) {
			if x.big != nil {
				return errResponseTooLarge
			}
			x.grow()
		}
		var n int
		var err error
		if first.valid {
			n, err, first.valid = first.n, first.err, false
		} else {
			n, err = uc.Read(x.In[x.InW:])
		}
		x.InW += n
		if n == 0 && err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				now := time.Now()
				if now.Before(deadline) {
					// A slice ended (or a lazily armed deadline came
					// early): is the client still there?
					if x.d.Gone() {
						return errClientGone
					}
					sock.SetRead(uc.Conn, &uc.ReadDeadline, nextSlice(now, deadline))
					continue
				}
				if sendErr != nil {
					return sendErr
				}
				return errResponseTimeout
			}
			if sendErr != nil {
				return sendErr
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if reused && x.InW == 0 && !x.bodyRead && informational == 0 && !route.IsTimeout(err) {
				return &staleConnError{err}
			}
			return err
		}
	}
}

// firstRead is the outcome of the read WriteRead made right after the
// request went out (valid: there was one).
type firstRead struct {
	n     int
	err   error
	valid bool
}

// sendRequest writes x.Req: the head and whatever of the body came with it.
// The everyday request (nothing left to stream) is written and its answer
// awaited in one step, which saves the read that would find nothing right
// after the write (sock.WriteReader); the outcome of the read it made
// instead is returned for the response loop.
func (x *Exchange) sendRequest(uc *upstream.Conn, now, deadline time.Time) (firstRead, error) {
	req := x.Req
	if x.BodyLeft == 0 {
		armResponseWait(uc, now, deadline)
		sent, n, err := uc.WriteRead(req, x.In)
		if sent == len(req) {
			return firstRead{n: n, err: err, valid: true}, nil
		}
		if err != nil {
			return firstRead{}, err
		}
		req = req[sent:] // not taken at once (or TLS): written below
	}
	_, err := uc.Write(req)
	return firstRead{}, err
}

// armResponseWait arms uc's read deadline for the wait for the response
// head: the next slice of it, within an eighth (see sock.SetReadLazy).
func armResponseWait(uc *upstream.Conn, now, deadline time.Time) {
	slice := nextSlice(now, deadline)
	sock.SetReadLazy(uc.Conn, &uc.ReadDeadline, slice, slice.Sub(now)/8)
}

// nextSlice is the end of the next wait for a response head.
func nextSlice(now, deadline time.Time) time.Time {
	if s := now.Add(ClientCheckInterval); s.Before(deadline) {
		return s
	}
	return deadline
}

// streamBody copies the rest of the request body from the client to uc,
// chunked when its length is unknown (with the client's trailers). It stops
// early when the upstream answers before taking the whole body (a 413, a
// 401): the answer is relayed and the client connection closed after it.
func (x *Exchange) streamBody(uc *upstream.Conn) error {
	x.grow()
	buf := x.In
	if x.BodyChunk {
		buf = x.In[:len(x.In)-32] // room for the chunk framing
	}
	for left := x.BodyLeft; left != 0; {
		room := int64(len(buf))
		if left > 0 {
			room = min(left, room)
		}
		n, err := x.d.ReadBody(buf[:room])
		if n > 0 {
			x.bodyRead = true
			if left > 0 {
				left -= int64(n)
			}
			sock.SetWriteLazy(uc.Conn, &uc.WriteDeadline, time.Now().Add(x.Service.Spec().ResponseTimeout), sock.ClientDeadlineSlack)
			if werr := x.sendBody(uc, buf[:n]); werr != nil {
				x.BodyUnread = true
				return werr
			}
			if uc.Answered() { // a peek (under TLS: see upstream/tls.go)
				// The upstream answered (or gave up) before the whole
				// body: stop sending, read its answer.
				x.BodyUnread = left != 0
				break
			}
		}
		if err == io.EOF && left < 0 {
			if x.BodyChunk {
				tail := append(append(x.In[:0], "0\r\n"...), x.d.RequestTrailers(nil)...)
				if _, werr := uc.Write(append(tail, "\r\n"...)); werr != nil {
					return werr
				}
			}
			left = 0
			break
		}
		if err != nil && left != 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &ClientBodyError{Err: err}
		}
	}
	sock.SetWrite(uc.Conn, &uc.WriteDeadline, time.Time{})
	x.BodyLeft = 0
	x.shrink() // before the response: nothing of it is in the buffer yet
	return nil
}

// sendBody writes body bytes p (which lie at the start of x.in, with room
// after them) to uc, as one chunk when the body goes chunked.
func (x *Exchange) sendBody(uc *upstream.Conn, p []byte) error {
	if !x.BodyChunk {
		_, err := uc.Write(p)
		return err
	}
	size := strconv.AppendInt(x.hex[:0], int64(len(p)), 16)
	bufs := net.Buffers{append(size, '\r', '\n'), p, wire.CRLF}
	_, err := bufs.WriteTo(uc.Conn)
	return err
}

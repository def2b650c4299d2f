package core

import (
	"bytes"

	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/sock"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// relay sends the response whose head is in x.resp to the client through
// the downstream, with its body, and returns the upstream connection to its
// pool only when the exchange left it clean: the response was framed, read
// to its end, and nothing follows it. It reports whether the client
// connection may go on.
func (x *Exchange) relay() bool {
	r := &x.Resp
	x.Status = r.Status
	if r.Status == http.StatusSwitchingProtocols {
		// An upgrade the client asked for: the connection becomes a
		// tunnel, owned by the downstream until either side ends.
		err := x.d.Tunnel(x)
		x.Conn.Conn.Close()
		x.Conn = nil
		x.unlease()
		if err != nil {
			x.bodyFailed(err)
		}
		return false
	}
	noBody := x.Method == http.MethodHead || r.Status == http.StatusNoContent || r.Status == http.StatusNotModified
	if x.h2 != nil {
		x.h2BeforeHead() // relay_h2.go
	}
	if a := x.replace(filterResponse{x}); a != nil {
		// A route filter answers instead (the cache turns a 304 to its
		// revalidation into the stored response): the upstream's body is
		// not read, so its connection is not reused (an h2 stream is
		// ended).
		if x.h2 != nil {
			x.h2.finish()
			x.h2 = nil
		} else {
			x.Conn.Conn.Close()
			x.Conn = nil
		}
		x.unlease()
		return x.reply(a, false)
	}
	x.filterResponseHead()
	if x.body != nil {
		x.headPending = true // sent with the body filters' first output (filters.go)
	} else if err := x.d.Head(x); err != nil {
		x.bodyFailed(&ClientError{err})
		return false
	}
	upstreamClean := !r.Close && !r.HTTP10
	var err error
	switch {
	case noBody:
		err = x.end()
	case x.h2 != nil:
		err = x.relayH2Body() // relay_h2.go
	case r.Chunked:
		err = x.relayChunked()
	case r.ContentLength >= 0:
		err = x.relayLength(r.ContentLength)
	default:
		err = x.relayUntilClose()
		upstreamClean = false
	}
	// Bytes past the response's framing (a body after a HEAD answer or a
	// 204, more than Content-Length, anything after the last chunk) put
	// the connection out of step: it is closed, never reused.
	upstreamClean = upstreamClean && x.InR == x.InW
	if err != nil {
		x.abortBody() // a cut-off body is never stored (filter/extra.go)
		if _, client := errors.AsType[*ClientError](err); !client && x.d.Abort() {
			// Nothing reached the client yet: a proper error answer
			// instead of a connection closed after a complete request
			// (which a client may take for a stale keep-alive and send
			// again).
			x.Service.Report(x.upstream, health.Failure)
			x.BytesSent = 0
			return x.upstreamFailed(err)
		}
		x.bodyFailed(err)
		return false
	}
	if x.h2 != nil {
		// The stream ended (the transport keeps its connection), and with
		// it the request body's pump: was the client's body all read?
		x.h2.finish()
		x.h2 = nil
		x.unlease()
		return !x.ClientStop && !x.BodyUnread
	}
	uc := x.Conn
	x.Conn = nil
	x.unlease()
	if upstreamClean {
		uc.Pool.Put(uc, x.Start) // an idle age a response's time too old errs on the safe side
	} else {
		uc.Conn.Close()
	}
	return !x.ClientStop && !x.BodyUnread
}

// bodyFailed handles a failure after the response head went out: too late
// for an error answer, so both connections close and the client sees a
// truncated response.
func (x *Exchange) bodyFailed(err error) {
	if _, ok := errors.AsType[*ClientError](err); ok {
		return // the client went away: nobody to tell, no fault of the upstream's
	}
	x.Truncated = true
	x.Service.Report(x.upstream, health.Failure)
	x.Service.Logger.Warn("upstream failed after the response started", "route", x.Route.Spec().Name,
		"address", x.upstream.Addr(), "instance_id", x.upstream.Instance().ID, "error", err)
}

func (x *Exchange) data(p []byte) error {
	if x.body != nil {
		if _, err := x.body.Write(p); err != nil {
			return asClientError(err)
		}
		return nil
	}
	x.BytesSent += int64(len(p))
	if err := x.d.Data(p); err != nil {
		return &ClientError{err}
	}
	return nil
}

func (x *Exchange) end() error {
	if err := x.closeBody(); err != nil {
		return err
	}
	if err := x.d.End(); err != nil {
		return &ClientError{err}
	}
	return nil
}

// more reads more upstream bytes into x.in, first sending what is queued for
// the client (the read may block: a streamed response reaches the client as
// it comes). It keeps unread bytes. While the upstream is quiet it checks
// every clientCheckInterval that the client is still there, so that an
// event stream or long poll whose client left releases its upstream
// connection and counts.
func (x *Exchange) more() error {
	if x.body != nil {
		if err := x.body.Flush(); err != nil {
			return asClientError(err)
		}
		if err := x.sendHead(); err != nil {
			return err // the upstream pauses: the head goes now, for streaming
		}
	}
	if err := x.d.Flush(); err != nil {
		return &ClientError{err}
	}
	if x.InR == x.InW {
		x.InR, x.InW = 0, 0
	} else if x.InR > 0 {
		x.InW = copy(x.In, x.In[x.InR:x.InW])
		x.InR = 0
	}
	if x.InW == len(x.In) {
		return wire.ErrBadResponse
	}
	uc := x.Conn
	for {
		sock.SetReadLazy(uc.Conn, &uc.ReadDeadline, time.Now().Add(ClientCheckInterval), ClientCheckInterval/4)
		n, err := uc.Read(x.In[x.InW:])
		x.InW += n
		if n > 0 {
			return nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if x.d.Gone() {
				return &ClientError{errClientGone}
			}
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
}

// relayLength relays a body of n bytes.
func (x *Exchange) relayLength(n int64) error {
	if avail := int64(x.InW - x.InR); avail >= n {
		// The whole body came with the head: one write for both.
		body := x.In[x.InR : x.InR+int(n)]
		x.InR += int(n)
		if err := x.data(body); err != nil {
			return err
		}
		return x.end()
	} else if n-avail > int64(len(x.small)) {
		x.grow()
	}
	for n > 0 {
		if x.InR == x.InW {
			if err := x.more(); err != nil {
				return unexpected(err)
			}
		}
		k := min(int64(x.InW-x.InR), n)
		if err := x.data(x.In[x.InR : x.InR+int(k)]); err != nil {
			return err
		}
		x.InR += int(k)
		n -= k
	}
	return x.end()
}

// relayChunked relays a chunked body, checked and unframed for the
// downstream (which frames it again as its client needs), with its trailer
// fields.
func (x *Exchange) relayChunked() error {
	for {
		line, err := x.line()
		if err != nil {
			return err
		}
		size, ok := wire.ChunkSize(line)
		if !ok {
			return wire.ErrBadResponse
		}
		if size == 0 {
			for {
				line, err := x.line()
				if err != nil {
					return err
				}
				if len(line) == 0 {
					break
				}
				colon := bytes.IndexByte(line, ':')
				if colon <= 0 || !wire.IsResponseToken(line[:colon]) || !wire.ValidValue(line[colon+1:]) {
					return wire.ErrBadResponse
				}
				if err := x.closeBody(); err != nil {
					return err // a body filter's tail goes before the trailers
				}
				if err := x.d.Trailer(line); err != nil {
					return &ClientError{err}
				}
			}
			return x.end()
		}
		if size-int64(x.InW-x.InR) > int64(len(x.small)) {
			x.grow()
		}
		for size > 0 {
			if x.InR == x.InW {
				if err := x.more(); err != nil {
					return unexpected(err)
				}
			}
			k := min(int64(x.InW-x.InR), size)
			if err := x.data(x.In[x.InR : x.InR+int(k)]); err != nil {
				return err
			}
			x.InR += int(k)
			size -= k
		}
		if line, err := x.line(); err != nil {
			return err
		} else if len(line) != 0 {
			return wire.ErrBadResponse
		}
	}
}

// relayUntilClose relays a body delimited by the upstream closing the
// connection (the downstream frames it so that the client's connection
// lives on).
func (x *Exchange) relayUntilClose() error {
	for {
		if n := x.InW - x.InR; n > 0 {
			if err := x.data(x.In[x.InR:x.InW]); err != nil {
				return err
			}
			x.InR = x.InW
		}
		if err := x.more(); err != nil {
			if err == io.EOF {
				return x.end()
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
// CRLF (or bare LF, RFC 9112 §2.2). It is valid until the next read.
func (x *Exchange) line() ([]byte, error) {
	for {
		if i := bytes.IndexByte(x.In[x.InR:x.InW], '\n'); i >= 0 {
			l := x.In[x.InR : x.InR+i]
			x.InR += i + 1
			if n := len(l); n > 0 && l[n-1] == '\r' {
				l = l[:n-1]
			}
			return l, nil
		}
		if x.InW-x.InR >= maxChunkLine {
			return nil, wire.ErrBadResponse
		}
		if err := x.more(); err != nil {
			return nil, unexpected(err)
		}
	}
}

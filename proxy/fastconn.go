package proxy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/sock"
	"github.com/ferry-proxy/ferry/proxy/wire"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// fastBufSize is a client connection's read buffer: a request head that
// does not fit goes to the Handler (which allows up to max_header_bytes).
const fastBufSize = 8 << 10

// fastConn is one client connection while the fast lane serves it. Only its
// own goroutine touches it, except state (Shutdown closes idle connections).
type fastConn struct {
	s     *Server
	gc    *guardConn // Close releases the guard's connection slot
	raw   net.Conn   // gc's connection, read and written directly
	state atomic.Int32

	buf  []byte // buf[r:w] is read and not yet consumed
	r, w int

	rdl, wdl time.Time // the deadlines armed on raw (see deadline.go)

	remote      string     // RemoteAddr().String(), once
	clientIP    string     // its host part, for X-Forwarded-For
	edge        *core.Edge // the policy trusted was computed for
	trusted     bool
	sock.Peeker          // the client connection's
	down        fastDown // the downstream of the exchange in progress
	parkable    bool     // parked when quiet for s.parkAfter (park.go)
	// The request's view for route filters (used only by routes with
	// filters; reset per request, kept with the connection's memory).
	filterReq core.FilterRequest
	filterSrc fastSource
	// The request's X-Request-Id (requestid.go): the trusted peer's (a
	// view into buf) or a new one in reqIDBuf (reqIDNew).
	reqID    []byte
	reqIDBuf [32]byte
	reqIDNew bool
	extra    []byte // scratch for the extra fields of ferry's own answers

	// The head being served. Last: every request touches the fields above,
	// which then share a few cache lines (a connection's goroutine often
	// wakes on another core, where each line it touches is a miss), and it
	// touches only the start of the head's 3.7 KiB.
	head wire.RequestHead
}

const (
	connActive int32 = iota
	connIdle         // waiting for the first byte of a request
	connClosed
)

// fastConns recycles connection state and read buffers: a client opening a
// connection per request would otherwise cost ~12 KiB of garbage each.
var fastConns = sync.Pool{New: func() any { return &fastConn{buf: make([]byte, fastBufSize)} }}

func newFastConn(s *Server, gc *guardConn) *fastConn {
	c := fastConns.Get().(*fastConn)
	c.s, c.gc, c.raw = s, gc, gc.Conn
	c.Bind(c.raw)
	c.parkable = s.parkable(c)
	c.remote = gc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(c.remote); err == nil {
		c.clientIP = host
	}
	return c
}

// serve reads request heads and serves them until the connection ends or is
// handed off.
func (c *fastConn) serve() {
	defer c.recycle()
	if c.s.handOffAll {
		c.handoff()
		return
	}
	for {
		h := &c.head
		v := wire.HeadIncomplete
		if c.r < c.w {
			v = wire.ParseRequestHead(c.buf[c.r:c.w], h, c.s.opts.MaxHeaderCount, c.s.maxHeaderBytes)
		}
		headStarted := false
		for v == wire.HeadIncomplete {
			if c.r == c.w {
				c.r, c.w = 0, 0
				if !c.idle() {
					return
				}
				if c.parkable {
					// Wait parkAfter for the next request, then park.
					sock.SetReadLazy(c.raw, &c.rdl, time.Now().Add(c.s.parkAfter), c.s.parkAfter/4)
				} else if c.s.idleTimeout > 0 {
					sock.SetReadLazy(c.raw, &c.rdl, time.Now().Add(c.s.idleTimeout), sock.ClientDeadlineSlack)
				}
			} else {
				if !headStarted && c.s.readHeaderTimeout > 0 {
					headStarted = true
					sock.SetRead(c.raw, &c.rdl, time.Now().Add(c.s.readHeaderTimeout))
				}
				if c.w == len(c.buf) {
					if c.r == 0 {
						c.handoff() // a head longer than the buffer
						return
					}
					c.w = copy(c.buf, c.buf[c.r:c.w])
					c.r = 0
				}
			}
			n, err := c.raw.Read(c.buf[c.w:])
			if n > 0 {
				if c.state.Load() != connActive && !c.state.CompareAndSwap(connIdle, connActive) {
					return // closed by Shutdown
				}
				c.w += n
				v = wire.ParseRequestHead(c.buf[c.r:c.w], h, c.s.opts.MaxHeaderCount, c.s.maxHeaderBytes)
				continue
			}
			if err != nil {
				if c.parkable && c.w == 0 && isTimeout(err) {
					if c.s.park(c) {
						return // the poller has it now
					}
					// Not parked: wait with the goroutine, as before.
					c.parkable = false
					if c.s.idleTimeout > 0 {
						sock.SetRead(c.raw, &c.rdl, time.Now().Add(c.s.idleTimeout))
					} else {
						sock.SetRead(c.raw, &c.rdl, time.Time{})
					}
					continue
				}
				// The client closed, reset or timed out between requests
				// (or mid-head): net/http closes silently too.
				c.gc.Close()
				return
			}
		}
		if v == wire.HeadHandoff {
			c.handoff()
			return
		}
		if !c.serveRequest(h) {
			return
		}
	}
}

// recycle forgets the connection, which is closed or handed off, and
// returns its state to the pool.
func (c *fastConn) recycle() {
	c.s.forget(c)
	buf := c.buf
	c.s, c.gc, c.raw, c.remote, c.clientIP, c.edge, c.trusted, c.parkable = nil, nil, nil, "", "", nil, false, false
	c.Fd = -1
	c.rdl, c.wdl = time.Time{}, time.Time{}
	c.r, c.w = 0, 0
	c.state.Store(connActive)
	c.head.Path, c.head.Query, c.head.Host = nil, nil, nil
	clear(c.head.Fields[:])
	c.buf = buf
	fastConns.Put(c)
}

// idle marks the connection idle between requests; false when the server is
// shutting down and the connection was closed.
func (c *fastConn) idle() bool {
	c.state.Store(connIdle)
	if c.s.done.Load() {
		c.closeIfIdle()
		return false
	}
	return true
}

func (c *fastConn) closeIfIdle() {
	if c.state.CompareAndSwap(connIdle, connClosed) {
		c.gc.Close()
	}
}

// handoff gives the connection, from the head at buf[r], to the Handler's
// server. It always returns false: the fast lane is done with it.
func (c *fastConn) handoff() bool {
	sock.SetRead(c.raw, &c.rdl, time.Time{})
	sock.SetWrite(c.raw, &c.wdl, time.Time{})
	c.s.h.Stats().HandedOff()
	c.gc.handOver(c.buf[c.r:c.w])
	c.s.handoff.give(c.gc)
	return false
}

// isTrusted reports whether the peer is a trusted proxy under the edge
// policy in force, computing it again only when the policy changed.
func (c *fastConn) isTrusted() bool {
	if e := c.s.h.EdgePolicy(); e != c.edge {
		c.edge, c.trusted = e, e.Trusted(c.remote)
	}
	return c.trusted
}

// serveRequest serves the parsed head h, or hands the connection off before
// consuming anything when the Handler must answer. It reports whether the
// connection stays with the fast lane for another request.
func (c *fastConn) serveRequest(h *wire.RequestHead) bool {
	start := time.Now()
	hd := c.s.h
	c.setRequestID(h)
	c.filterSrc.c = c
	c.filterReq.Reset(&c.filterSrc)
	p := core.PlanRequest(hd.Table(), unsafeString(h.Host), unsafeString(h.Path), h.ContentLength, nil, &c.filterReq, context.Background())
	if p.Code != 0 {
		return c.answerPlan(h, &p, start)
	}
	route, svc, first, canonical := p.Route, p.Service, p.First, p.Path

	// Committed: consume the head and the part of the body already read.
	x := core.Exchanges.Get().(*core.Exchange)
	c.down.c, c.down.x = c, x
	x.Reset(&c.down, start, h.Method, route, svc, canonical)
	x.ClientStop = h.Close
	x.Filters = p.Filters
	c.r += h.Size
	inBuf := min(int64(c.w-c.r), h.ContentLength)
	x.BodyHead = c.buf[c.r : c.r+int(inBuf)]
	x.BodyLeft = h.ContentLength - inBuf
	c.r += int(inBuf)
	x.Req = appendFastRequest(x.Req[:0], x, h, c)

	svc.Budget.BeginRequest()
	keep := x.Forward(first)
	svc.Budget.EndRequest(x.Retries)
	p.Done()
	p.Finish()

	x.Record(start)
	if hd.AccessLog() != nil {
		c.logAccess(start, x, h, canonical)
	}
	x.Release()
	c.down.x = nil
	core.Exchanges.Put(x)

	if !keep || c.s.done.Load() {
		c.closeWrite(h.Close)
		return false
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	return true
}

// answerPlan answers a request that is not forwarded (400, 404, 413, 503)
// in the fast lane, so that the connection stays here. A request with a
// body is answered and the connection closed: its body is left unread.
func (c *fastConn) answerPlan(h *wire.RequestHead, p *core.Plan, start time.Time) bool {
	c.r += h.Size
	closing := p.Closing || h.ContentLength > 0 || h.Close || c.s.done.Load()
	extra := append(c.extra[:0], "X-Request-Id: "...)
	extra = append(append(extra, c.reqID...), "\r\n"...)
	if p.RetryAfter {
		extra = append(extra, "Retry-After: 1\r\n"...)
	}
	c.extra = extra
	x := core.Exchanges.Get().(*core.Exchange)
	var b []byte
	sent := int64(len(p.Msg) + 1)
	if p.Answer != nil {
		b = c.appendFilterAnswer(x.Out[:0], h, p, extra, closing, start)
		sent = int64(len(p.Answer.Body))
	} else {
		b = wire.AppendErrorResponse(x.Out[:0], p.Code, p.Msg, extra, closing, h.Method == "HEAD", start)
	}
	err := c.write(b)
	p.Finish()
	x.Out = b[:0]
	core.Exchanges.Put(x)
	hd := c.s.h
	hd.RecordAnswered(p, p.Code, sent, start)
	if hd.AccessLog() != nil {
		e := accesslog.Entries.Get().(*accesslog.Entry)
		*e = accesslog.Entry{Start: start, Duration: time.Since(start), Client: c.remote, Method: h.Method,
			Host: unsafeString(h.Host), Path: p.Path, Proto: "HTTP/1.1", Status: p.Code, BytesSent: sent,
			RequestID: unsafeString(c.reqID)}
		if p.Route != nil {
			e.Route, e.Service = p.Route.Spec().Name, p.Service.Name()
		}
		if p.Answer != nil {
			e.AnsweredBy = filter.AnsweredBy(p.Filters)
		}
		hd.AccessLog().Log(e)
		*e = accesslog.Entry{}
		accesslog.Entries.Put(e)
	}
	if err != nil || closing {
		c.closeWrite(h.Close)
		return false
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	return true
}

// closeWrite ends the connection after a final response. A client that
// asked for the close sends nothing more (RFC 9112 §9.6), and one with
// nothing pending neither: a plain close sends a FIN after the response, as
// nginx does. Otherwise (the server is shutting down under a busy client)
// it sends a FIN first and drains what the client still sends for a moment,
// so that a reset does not destroy the response in flight (net/http does the
// same).
func (c *fastConn) closeWrite(clientClosing bool) {
	c.state.Store(connClosed)
	if c.r == c.w && (clientClosing || c.Peek() != sock.PeekData) {
		c.gc.Close()
		return
	}
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		sock.SetRead(c.raw, &c.rdl, time.Now().Add(closeDrainTime))
		for {
			if _, err := c.raw.Read(c.buf); err != nil {
				break
			}
		}
	}
	c.gc.Close()
}

const closeDrainTime = 500 * time.Millisecond

func (c *fastConn) logAccess(start time.Time, x *core.Exchange, h *wire.RequestHead, path string) {
	e := accesslog.Entries.Get().(*accesslog.Entry)
	*e = accesslog.Entry{Start: start, Duration: time.Since(start), Client: c.remote, Method: h.Method,
		Host: unsafeString(h.Host), Path: path, Proto: "HTTP/1.1", Status: x.Status, BytesSent: x.BytesSent,
		RequestID: unsafeString(c.reqID)}
	x.Describe(e)
	c.s.h.AccessLog().Log(e)
	*e = accesslog.Entry{}
	accesslog.Entries.Put(e)
}

// write sends b to the client within the write-idle timeout.
func (c *fastConn) write(b []byte) error {
	if d := c.s.opts.WriteIdleTimeout; d > 0 {
		sock.SetWriteLazy(c.raw, &c.wdl, time.Now().Add(d), sock.ClientDeadlineSlack)
	}
	_, err := c.raw.Write(b)
	return err
}

// writev sends a then b in one system call.
func (c *fastConn) writev(iov *net.Buffers, a, b []byte) error {
	if d := c.s.opts.WriteIdleTimeout; d > 0 {
		sock.SetWriteLazy(c.raw, &c.wdl, time.Now().Add(d), sock.ClientDeadlineSlack)
	}
	(*iov) = append((*iov)[:0], a, b)
	_, err := iov.WriteTo(c.raw)
	clear((*iov)[:cap(*iov)])
	return err
}

// unsafeString views b as a string without copying. The fast lane uses it
// for parts of the read buffer that stay untouched until the request ends;
// nothing keeps such a string beyond it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

package sock

import (
	"io"
	"net"
	"os"
	"syscall"
)

// WriteReader sends a request and waits for the first bytes of its answer
// in one RawConn.Read, so that the wait costs no read that finds nothing.
//
// net.Conn's Read always tries the read first and only then waits for the
// poller: right after a request is written the answer cannot be there yet,
// so that first read is a system call that returns EAGAIN, one per request.
// Waiting without it is only safe if the poller's readiness cannot be lost:
// RawConn.Read clears the descriptor's readiness *before* it calls the
// callback, so the write is done inside the callback, after the clear, and
// every byte that arrives after the write raises a new edge (the poller is
// edge-triggered: each arrival is an event). Bytes that were there before
// the write are the quiet check's business (Peeker), done before this.
//
// The poller's deadline (SetReadDeadline) bounds the wait, as for Read.
// Only the connection's owner uses it.
type WriteReader struct {
	conn net.Conn
	rc   syscall.RawConn
	step func(fd uintptr) bool // w.callback, bound once: no allocation per call

	out, in []byte
	sent, n int
	err     error
	waiting bool // the request is written: calls now read
	called  bool // the callback ran
}

// Bind prepares w for c; a connection that is not a socket is left unbound
// (WriteRead then writes nothing and the caller uses Write and Read).
func (w *WriteReader) Bind(c net.Conn) {
	w.conn, w.rc = c, nil
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
			w.step = w.callback
		}
	}
}

// WriteRead writes out, then waits for the answer and reads its first
// bytes into in. sent is how much of out was written: when it is short and
// err is nil, the socket would not take all of out at once (a full send
// buffer), and the caller writes the rest and reads as usual. When all of
// out was sent, n and err are those of the first read (io.EOF when the peer
// closed; a timeout error when the read deadline passed first). When the
// read deadline has passed already, nothing is written (sent 0, err nil).
func (w *WriteReader) WriteRead(out, in []byte) (sent, n int, err error) {
	if w.rc == nil || len(out) == 0 || len(in) == 0 {
		return 0, 0, nil
	}
	w.out, w.in, w.sent, w.n, w.err, w.waiting, w.called = out, in, 0, 0, nil, false, false
	rerr := w.rc.Read(w.step)
	sent, n, err = w.sent, w.n, w.err
	called := w.called
	w.out, w.in, w.err = nil, nil, nil
	if !called {
		// Refused before the callback ran: the read deadline had passed
		// already (a request that waited in a queue), or the connection
		// is closed. Nothing was written; the caller's Write and Read
		// report it as they would have.
		return 0, 0, nil
	}
	if rerr != nil && err == nil {
		err = rerr // the deadline passed, or the connection was closed
		if oe, ok := rerr.(*net.OpError); ok {
			err = oe.Err // RawConn's "raw-read" wrapping; ours follows
		}
	}
	if err != nil && err != io.EOF {
		op := "read"
		if sent < len(out) {
			op = "write"
		}
		err = &net.OpError{Op: op, Net: "tcp", Source: w.conn.LocalAddr(), Addr: w.conn.RemoteAddr(), Err: wrapErrno(op, err)}
	}
	return sent, n, err
}

// callback is RawConn.Read's function: the first call writes, and asks to
// wait (false); each call after a readiness event reads.
func (w *WriteReader) callback(fd uintptr) bool {
	w.called = true
	if !w.waiting {
		for w.sent < len(w.out) {
			n, err := rawWrite(int(fd), w.out[w.sent:])
			if n > 0 {
				w.sent += n
			}
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return true // the caller writes the rest with its deadline
			case err != nil:
				w.err = err
				return true
			case n <= 0:
				w.err = io.ErrShortWrite
				return true
			}
		}
		w.waiting = true
		return false
	}
	for {
		n, err := rawRead(int(fd), w.in)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false // not for us (a write-readiness edge): wait on
		case err != nil:
			w.err = err
		case n == 0:
			w.err = io.EOF
		default:
			w.n = n
		}
		return true
	}
}

// wrapErrno gives a system call's error the shape net.Conn's own errors
// have (an *os.SyscallError under the *net.OpError), so that logs and
// errors.Is read the same either way.
func wrapErrno(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		return os.NewSyscallError(op, errno)
	}
	return err
}

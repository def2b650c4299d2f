package core

import (
	"io"

	"github.com/ferry-proxy/ferry/health"
)

// h2BeforeHead notes, before the head goes out, whether the client's body
// is still being read: an h2 upstream may answer before it took the whole
// body (a 413, an error status), and an HTTP/1.1 client connection whose
// body is left unread must be told it closes after the answer.
func (x *Exchange) h2BeforeHead() {
	b := x.h2.body
	b.mu.Lock()
	unread := b.left != 0
	b.mu.Unlock()
	if unread {
		x.BodyUnread = true
	}
}

// relayH2Body relays the body of an h2 response (its head already went
// through the Downstream in relay) and then its trailers, as Trailer
// lines: the same Data/Trailer/End calls an HTTP/1.1 upstream's body makes.
// Each read may block (a stream's next message): what was queued for the
// client goes first.
func (x *Exchange) relayH2Body() error {
	h := x.h2
	body := h.resp.Body
	x.grow() // a whole DATA frame's worth per read
	for {
		n, err := body.Read(x.In)
		if n > 0 {
			if werr := x.data(x.In[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.h2BodyFailed(h.cause(err))
		}
		if x.body != nil {
			if ferr := x.body.Flush(); ferr != nil {
				return asClientError(ferr)
			}
		}
		if ferr := x.d.Flush(); ferr != nil {
			return &ClientError{ferr}
		}
	}
	if err := x.closeBody(); err != nil {
		return err // a body filter's tail goes before the trailers
	}
	if err := trailerLines(h.resp.Trailer, func(line []byte) error {
		if err := x.d.Trailer(line); err != nil {
			return &ClientError{err}
		}
		return nil
	}); err != nil {
		return err
	}
	return x.end()
}

// h2BodyFailed handles an h2 response body that failed: the client's own
// failures are its own; for a gRPC request whose response head went out,
// the failure becomes the call's status in trailers (UNAVAILABLE, or
// DEADLINE_EXCEEDED when the deadline passed), so that the client gets a
// status rather than a stream cut without one; otherwise relay's error
// path answers (nothing sent yet) or cuts the response.
func (x *Exchange) h2BodyFailed(err error) error {
	if err == errClientGone {
		return &ClientError{errClientGone}
	}
	if ce := x.h2.body.clientFailure(); ce != nil {
		return &ClientError{ce}
	}
	if !x.GRPC {
		return err
	}
	if err != errGRPCDeadline {
		x.Service.Report(x.upstream, health.Failure)
	}
	x.Service.Logger.Warn("upstream failed after the gRPC response started", "route", x.Route.Spec().Name,
		"address", x.upstream.Addr(), "instance_id", x.upstream.Instance().ID, "error", err)
	x.abortBody()
	code, msg := grpcStatusOf(err)
	for _, f := range grpcStatusFields(code, msg) {
		if terr := x.d.Trailer([]byte(f[0] + ": " + f[1])); terr != nil {
			return &ClientError{terr}
		}
	}
	if eerr := x.d.End(); eerr != nil {
		return &ClientError{eerr}
	}
	return nil
}

// clientFailure returns the client body's failure, if any.
func (b *h2Body) clientFailure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.clientErr != nil {
		return b.clientErr
	}
	return nil
}

package core

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/wire"
)

// gRPC semantics for grpc services (SPEC §12). A gRPC client reads a call's
// outcome from grpc-status, not from the HTTP status: ferry's own answers
// to a gRPC request (no instance, an unreachable or failing upstream, a
// timeout) are therefore HTTP 200 "Trailers-Only" responses — one HEADERS
// frame with content-type application/grpc, grpc-status and grpc-message,
// ending the stream — as Envoy answers them, rather than its plain-text
// 502/503/504, which a gRPC client could only report as UNKNOWN or
// INTERNAL with an HTTP status in the message.
//
// Retries follow gRPC's rules through the one attempt policy: a gRPC call
// is a POST, so only an attempt that never reached an instance (a connect
// failure) goes to another; nothing is retried once response headers were
// sent.

// gRPC status codes ferry answers with (google.golang.org/grpc/codes).
const (
	grpcUnknown           = 2
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcInternal          = 13
	grpcUnavailable       = 14
)

// GRPCRequest reports whether a request with this Content-Type is a gRPC
// call ("application/grpc", "application/grpc+proto", …; not grpc-web,
// whose framing differs).
func GRPCRequest(contentType string) bool {
	rest, ok := strings.CutPrefix(strings.ToLower(contentType), "application/grpc")
	return ok && (rest == "" || rest[0] == '+' || rest[0] == ';')
}

// GRPCAnswers reports whether ferry answers a request to svc with this
// Content-Type in gRPC form.
func GRPCAnswers(svc *route.Service, contentType string) bool {
	return svc != nil && svc.Spec().Protocol == route.ProtocolGRPC && GRPCRequest(contentType)
}

// grpcRequest reports whether the outbound head req carries a gRPC
// Content-Type.
func grpcRequest(req []byte) bool {
	end := bytes.Index(req, []byte("\r\n\r\n"))
	if end < 0 {
		return false
	}
	for line := range bytes.SplitSeq(req[:end], []byte("\r\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(name), "content-type") {
			return GRPCRequest(string(wire.TrimOWS(value)))
		}
	}
	return false
}

// GRPCStatusOfHTTP maps the status of an answer ferry makes itself to the
// gRPC status it sends instead: a timeout is DEADLINE_EXCEEDED, no
// instance, max_requests or a failing upstream UNAVAILABLE (the call may be
// tried again), a body over max_body_bytes RESOURCE_EXHAUSTED, a request
// ferry could not read INTERNAL (gRPC's own mapping of 400).
func GRPCStatusOfHTTP(code int) int {
	switch code {
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return grpcDeadlineExceeded
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return grpcUnavailable
	case http.StatusRequestEntityTooLarge:
		return grpcResourceExhausted
	case http.StatusBadRequest:
		return grpcInternal
	}
	return grpcUnknown
}

// grpcStatusOf is the status a gRPC call gets when its upstream failed
// after the response started.
func grpcStatusOf(err error) (int, string) {
	if route.IsTimeout(err) {
		return grpcDeadlineExceeded, "ferry: upstream timed out"
	}
	return grpcUnavailable, "ferry: upstream failed: " + err.Error()
}

// GRPCStatusFields are the fields carrying a gRPC status: grpc-status and
// grpc-message, percent-encoded as the gRPC HTTP/2 protocol asks.
func GRPCStatusFields(code int, msg string) [][2]string {
	return [][2]string{{"Grpc-Status", strconv.Itoa(code)}, {"Grpc-Message", grpcMessage(msg)}}
}

func grpcStatusFields(code int, msg string) [][2]string { return GRPCStatusFields(code, msg) }

// grpcMessage percent-encodes msg: bytes outside printable ASCII and '%'.
func grpcMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg) && i < 1024; i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// answerGRPC is answer for a gRPC request: a Trailers-Only response
// through the Downstream's Head and End, its head judged by wire like any
// upstream's. It reports whether the client connection may go on.
func (x *Exchange) answerGRPC(code int, msg string, closing bool) bool {
	x.Status, x.BytesSent = http.StatusOK, 0
	b := make([]byte, 0, 256+len(msg))
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\n"...)
	for _, f := range GRPCStatusFields(GRPCStatusOfHTTP(code), msg) {
		b = wire.AppendHeaderLine(b, []byte(f[0]), []byte(f[1]))
	}
	b = append(b, "Content-Length: 0\r\n\r\n"...)
	if complete, err := wire.ParseResponseHead(b, &x.Resp); err != nil || !complete {
		return false // cannot happen: the head is ferry's own
	}
	x.RespEdits.Reset() // an answer of ferry's, not the upstream's
	if closing {
		x.BodyUnread = true // the fast lane then says Connection: close
	}
	if x.d.Head(x) != nil || x.d.End() != nil {
		return false
	}
	return !closing
}

// grpcTimeout parses a grpc-timeout value: at most 8 digits and a unit
// (H, M, S, m, u, n).
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second,
		'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	if unit == 0 {
		return 0, false
	}
	if n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, true
	}
	return time.Duration(n) * unit, true
}

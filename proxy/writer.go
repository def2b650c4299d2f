package proxy

import (
	"bufio"
	"net"
	"net/http"
)

// responseWriter records the status and body bytes of a response for the
// access log. It implements Flush and Hijack itself (to keep its records
// right) and Unwrap, so that http.ResponseController reaches anything else
// the server's writer supports. Only the handler's goroutine uses it.
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	hijacked    bool
	relayed1xx  bool // an informational head reached the client: no retry
}

func (w *responseWriter) WriteHeader(code int) {
	// 1xx responses (other than 101) are informational: the final status
	// is still to come.
	if !w.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status, w.wroteHeader = code, true
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// ReverseProxy copies an upstream's 1xx headers as they are:
		// hop-by-hop headers must not cross the proxy (limits.go).
		stripHopByHop(w.ResponseWriter.Header())
		w.relayed1xx = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client (event streams, unknown-length
// bodies). A flush before any header commits a 200, as the server does.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over for an upgrade (ReverseProxy writes the
// 101 itself on the hijacked connection).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		hijacked(c) // the connection guard stops reading it as HTTP/1
		w.hijacked = true
		if !w.wroteHeader {
			w.status, w.wroteHeader = http.StatusSwitchingProtocols, true
		}
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController find the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

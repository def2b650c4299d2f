package proxy

import (
	"bufio"
	"net"
	"net/http"
)

// responseWriter records the status and body bytes of a response for the
// access log and the counters. Only the handler's goroutine uses it.
type responseWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *responseWriter) WriteHeader(code int) {
	// 1xx responses (other than 101) are informational: the final status
	// is still to come.
	if !w.wroteHeader && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status, w.wroteHeader = code, true
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

// flush sends buffered data to the client (before the core waits on the
// upstream, so that event streams and long polls flow at once).
func (w *responseWriter) flush() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// hijack takes the connection over for an upgrade; the connection guard
// stops reading it as HTTP/1.
func (w *responseWriter) hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		hijacked(c)
		if !w.wroteHeader {
			w.status, w.wroteHeader = http.StatusSwitchingProtocols, true
		}
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController find the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

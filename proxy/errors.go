package proxy

import (
	"net/http"
	"strconv"
)

// statusClientClosed is logged (never sent) when the client went away before
// the upstream answered, as nginx does.
const statusClientClosed = 499

// writeError answers with a short plain-text body. nosniff keeps a browser
// from reading the echoed path as anything but text.
func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}

func quote(s string) string { return strconv.Quote(s) }

package proxy

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/hashicorp/go-hclog"
)

// statusClientClosed is logged (never sent) when the client went away before
// the upstream answered, as nginx does.
const statusClientClosed = 499

// proxyError is the ReverseProxy's ErrorHandler: it maps the last attempt's
// error to the client's answer. r is the outbound request, whose context
// derives from the inbound one.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateFrom(r.Context())
	if st == nil { // cannot happen: every proxied request carries its state
		writeError(w, http.StatusBadGateway, "ferry: upstream failed")
		return
	}
	if st.upstream == nil {
		// ReverseProxy refused the request before any attempt (an Upgrade
		// header naming an unprintable protocol): the client's fault.
		h.logger.Debug("request refused before forwarding", "route", st.route.spec.Name, "error", err)
		writeError(w, http.StatusBadRequest, "ferry: bad request")
		return
	}
	log := h.logger.With("route", st.route.spec.Name, "service", st.service.name,
		"address", st.upstream.addr, "attempts", st.attempts, "error", err)

	if ce, ok := errors.AsType[*ClientBodyError](err); ok {
		// Before the context check: net/http cancels the request's
		// context when a body read fails, though the client may still be
		// there to read the answer (a read timeout).
		clientBodyFailed(w, ce, log)
		return
	}
	if r.Context().Err() != nil {
		// The inbound request's context is done: the client went away (ferry
		// puts no deadline on it). Nobody to answer, and no fault of the
		// upstream's.
		st.status = statusClientClosed
		log.Debug("client went away before the upstream answered")
		return
	}
	if rw, ok := w.(*responseWriter); ok && (rw.hijacked || rw.wroteHeader) {
		// A failure after the response started (a broken upgrade): too
		// late for an error page.
		log.Warn("upstream failed after the response started")
		return
	}
	if isTimeout(err) {
		log.Warn("upstream timed out")
		writeError(w, http.StatusGatewayTimeout, "ferry: upstream of service "+quote(st.service.name)+" timed out")
		return
	}
	log.Warn("upstream failed")
	writeError(w, http.StatusBadGateway, "ferry: upstream of service "+quote(st.service.name)+" failed")
}

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

// clientBodyFailed answers a request whose body could not be read: 413 when
// it exceeded the route's max_body_bytes, 408 when the client paused too
// long, else 400; the connection is closed, its framing being unknown.
func clientBodyFailed(w http.ResponseWriter, ce *ClientBodyError, log hclog.Logger) {
	log.Debug("client request body failed")
	if rw, ok := w.(*responseWriter); ok && (rw.hijacked || rw.wroteHeader) {
		return
	}
	w.Header().Set("Connection", "close")
	if _, ok := errors.AsType[*http.MaxBytesError](ce); ok {
		writeError(w, http.StatusRequestEntityTooLarge, msgBodyTooLarge)
		return
	}
	if isTimeout(ce.Err) {
		writeError(w, http.StatusRequestTimeout, "ferry: timed out reading the request body")
		return
	}
	writeError(w, http.StatusBadRequest, "ferry: bad request body")
}

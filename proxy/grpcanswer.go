package proxy

import (
	"net/http"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// writeGRPCAnswer answers a gRPC request to a grpc service that ferry
// routes but does not forward (no instance, max_requests, max_body_bytes)
// with the gRPC status for code, HTTP 200 Trailers-Only, as the core
// answers the failures of a forwarded one (core/grpc.go). The fast lane
// never meets a gRPC call: gRPC speaks HTTP/2, which net/http serves.
func writeGRPCAnswer(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	for _, f := range core.GRPCStatusFields(core.GRPCStatusOfHTTP(code), msg) {
		h.Set(f[0], f[1])
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

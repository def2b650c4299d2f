package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"
)

// discardWriter is a minimal ResponseWriter, so that the benchmark measures
// the proxy rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkHandler forwards GETs through Handler.ServeHTTP to a real
// httptest backend over keep-alive connections.
func BenchmarkHandler(b *testing.B) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the backend")
	}))
	defer be.Close()
	builder := NewBuilder(health.NewRegistry(), nil)
	defer builder.Close()
	h := NewHandler(Options{AccessLog: NewAccessLog(io.Discard, "text")})
	h.Store(builder.Build([]RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil,
		map[string]*discovery.InstanceSet{"user": setOf(b, "user", addr(be))}))

	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: make(http.Header)}
		for pb.Next() {
			req := httptest.NewRequest(http.MethodGet, "http://ferry.local/api/user/42?x=1", nil)
			req.RemoteAddr = "127.0.0.1:5555"
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

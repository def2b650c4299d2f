package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
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
	builder := route.NewBuilder(health.NewRegistry(), nil)
	defer builder.Close()
	h := NewHandler(Options{AccessLog: accesslog.New(io.Discard, "text")})
	h.Store(builder.Build([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil,
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

// BenchmarkFastLane sends keep-alive GETs over loopback through a Server's
// fast lane to a backend that answers each with a canned 64-byte response.
// Client and backend are raw sockets, so allocs/op are the fast lane's own.
func BenchmarkFastLane(b *testing.B) {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n" +
		"0123456789012345678901234567890123456789012345678901234567890123")
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil { // one request per read on loopback
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	builder := route.NewBuilder(health.NewRegistry(), nil)
	defer builder.Close()
	h := NewHandler(Options{AccessLog: accesslog.New(io.Discard, "text")})
	h.Store(builder.Build([]route.RouteSpec{{Name: "users", PathPrefix: "/api/user", Service: "user"}}, nil,
		map[string]*discovery.InstanceSet{"user": setOf(b, "user", be.Addr().String())}))
	front := newFrontend(b, h)
	defer front.Close()

	req := []byte("GET /api/user/42?x=1 HTTP/1.1\r\nHost: ferry.local\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			// The response is small: read until its 64-byte body is in.
			n := 0
			for {
				k, err := c.Read(buf[n:])
				if err != nil {
					b.Error(err)
					return
				}
				n += k
				if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 && n-i-4 >= 64 {
					break
				}
			}
		}
	})
}

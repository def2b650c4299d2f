// Package grpctest is a gRPC test service defined without protoc, for tests
// of gRPC through ferry with the real grpc-go: a hand-written service
// descriptor over a raw codec (messages are bytes), with the four kinds of
// call, plus grpc-go's own health service. Nothing here is for production
// use.
package grpctest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Codec is the raw codec: a message is a *[]byte. Calls name it with
// CallOption (content-type application/grpc+raw).
type Codec struct{}

func (Codec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (Codec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (Codec) Name() string { return "raw" }

func init() { encoding.RegisterCodec(Codec{}) }

// CallOption makes a call use the raw codec.
var CallOption = grpc.CallContentSubtype("raw")

// Method names of the Echo service.
const (
	Echo  = "/test.Echo/Echo"  // unary: the message back, a header and a trailer
	Fail  = "/test.Echo/Fail"  // unary: NOT_FOUND "nope"
	Hang  = "/test.Echo/Hang"  // unary: waits until the call ends (its deadline)
	Count = "/test.Echo/Count" // server streaming: n messages "0" … "n-1" for a request "n"
	Sum   = "/test.Echo/Sum"   // client streaming: the messages joined by "+"
	Chat  = "/test.Echo/Chat"  // bidirectional: "re:" + each message, as it comes
)

// Name is the server's name, sent as the x-server header of every call.
type server struct{ name string }

func unary(f func(s *server, ctx context.Context, in []byte) ([]byte, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		out, err := f(srv.(*server), ctx, in)
		if err != nil {
			return nil, err
		}
		return &out, nil
	}
}

var desc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Echo", Handler: unary(func(s *server, ctx context.Context, in []byte) ([]byte, error) {
			grpc.SetHeader(ctx, metadata.Pairs("x-server", s.name))
			grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t-"+string(in)))
			return in, nil
		})},
		{MethodName: "Fail", Handler: unary(func(*server, context.Context, []byte) ([]byte, error) {
			return nil, status.Error(codes.NotFound, "nope")
		})},
		{MethodName: "Hang", Handler: unary(func(_ *server, ctx context.Context, _ []byte) ([]byte, error) {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		})},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "Count", ServerStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
			var in []byte
			if err := st.RecvMsg(&in); err != nil {
				return err
			}
			n, _ := strconv.Atoi(string(in))
			for i := range n {
				m := []byte(strconv.Itoa(i))
				if err := st.SendMsg(&m); err != nil {
					return err
				}
			}
			return nil
		}},
		{StreamName: "Sum", ClientStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
			var all []byte
			for {
				var in []byte
				err := st.RecvMsg(&in)
				if errors.Is(err, io.EOF) {
					return st.SendMsg(&all)
				}
				if err != nil {
					return err
				}
				if len(all) > 0 {
					all = append(all, '+')
				}
				all = append(all, in...)
			}
		}},
		{StreamName: "Chat", ServerStreams: true, ClientStreams: true, Handler: func(_ any, st grpc.ServerStream) error {
			for {
				var in []byte
				err := st.RecvMsg(&in)
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				out := append([]byte("re:"), in...)
				if err := st.SendMsg(&out); err != nil {
					return err
				}
			}
		}},
	},
}

// Serve starts a gRPC server named name on a loopback port (over TLS with
// tlsConfig when not nil, else h2c) with the Echo service and the health
// service (status SERVING), stopped at cleanup. It returns the address.
func Serve(tb testing.TB, name string, tlsConfig *tls.Config) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var opts []grpc.ServerOption
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	s := grpc.NewServer(opts...)
	s.RegisterService(&desc, &server{name: name})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	tb.Cleanup(func() {
		hs.Shutdown()
		s.Stop()
		<-done
	})
	return ln.Addr().String()
}

package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ferry-proxy/ferry/internal/grpctest"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// gRPC through ferry with the real grpc-go, client and server: the client
// speaks h2c to the Handler (h2 requests are net/http's in both test
// runs), ferry speaks h2c or h2 over TLS to the instances.

// h2cFront serves f's Handler over HTTP/1.1 and h2c with prior knowledge,
// as a plain listener with http2 = true does; it is closed at cleanup.
func h2cFront(t *testing.T, f *fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s := &http.Server{Handler: f.handler, Protocols: &p}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln.Addr().String()
}

// grpcClient dials addr in h2c, closed at cleanup.
func grpcClient(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// grpcFixture routes "/" to service "g" with protocol grpc over the given
// instances, and returns a gRPC client connection to ferry.
func grpcFixture(t *testing.T, spec route.ServiceSpec, addrs ...string) (*fixture, *grpc.ClientConn) {
	t.Helper()
	f := newFixture(t, "text")
	if spec.Protocol == "" {
		spec.Protocol = route.ProtocolGRPC
	}
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "g"}},
		map[string]route.ServiceSpec{"g": spec}, setOf(t, "g", addrs...))
	return f, grpcClient(t, h2cFront(t, f))
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCUnaryAndStreams(t *testing.T) {
	_, cc := grpcFixture(t, route.ServiceSpec{}, grpctest.Serve(t, "a", nil))
	ctx := callCtx(t)

	t.Run("health", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health: %v %v", resp, err)
		}
	})
	t.Run("unary with header and trailer", func(t *testing.T) {
		in, out := []byte("hi"), []byte(nil)
		var hdr, trl metadata.MD
		if err := cc.Invoke(ctx, grpctest.Echo, &in, &out, grpctest.CallOption, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
			t.Fatal(err)
		}
		if string(out) != "hi" || first(hdr, "x-server") != "a" || first(trl, "x-trailer") != "t-hi" {
			t.Fatalf("out %q, header %v, trailer %v", out, hdr, trl)
		}
	})
	t.Run("upstream status kept", func(t *testing.T) {
		in, out := []byte("x"), []byte(nil)
		err := cc.Invoke(ctx, grpctest.Fail, &in, &out, grpctest.CallOption)
		if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "nope" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, grpctest.Count, grpctest.CallOption)
		if err != nil {
			t.Fatal(err)
		}
		n := []byte("50")
		if err := st.SendMsg(&n); err != nil {
			t.Fatal(err)
		}
		st.CloseSend()
		for i := 0; ; i++ {
			var m []byte
			err := st.RecvMsg(&m)
			if err == io.EOF {
				if i != 50 {
					t.Fatalf("%d messages, want 50", i)
				}
				break
			}
			if err != nil || string(m) != strconv.Itoa(i) {
				t.Fatalf("message %d: %q %v", i, m, err)
			}
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		st, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, grpctest.Sum, grpctest.CallOption)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"a", "b", "c"} {
			m := []byte(s)
			if err := st.SendMsg(&m); err != nil {
				t.Fatal(err)
			}
		}
		st.CloseSend()
		var out []byte
		if err := st.RecvMsg(&out); err != nil || string(out) != "a+b+c" {
			t.Fatalf("got %q %v", out, err)
		}
	})
	t.Run("bidirectional, in lockstep", func(t *testing.T) {
		st, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, grpctest.Chat, grpctest.CallOption)
		if err != nil {
			t.Fatal(err)
		}
		// Each answer is read before the next message is sent: the two
		// bodies flow at once through ferry.
		for i := range 5 {
			m := []byte(strconv.Itoa(i))
			if err := st.SendMsg(&m); err != nil {
				t.Fatal(err)
			}
			var out []byte
			if err := st.RecvMsg(&out); err != nil || string(out) != "re:"+strconv.Itoa(i) {
				t.Fatalf("round %d: %q %v", i, out, err)
			}
		}
		st.CloseSend()
		var out []byte
		if err := st.RecvMsg(&out); err != io.EOF {
			t.Fatalf("after CloseSend: %v", err)
		}
	})
}

func first(md metadata.MD, k string) string {
	if v := md.Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}

// ferry's own failures reach a gRPC client as gRPC statuses (HTTP 200,
// Trailers-Only), not as plain-text 5xx.
func TestGRPCErrorsAreStatuses(t *testing.T) {
	ctx := callCtx(t)
	in := []byte("x")
	call := func(cc *grpc.ClientConn, method string, opts ...grpc.CallOption) error {
		var out []byte
		return cc.Invoke(ctx, method, &in, &out, append(opts, grpctest.CallOption)...)
	}
	t.Run("no instance", func(t *testing.T) {
		f := newFixture(t, "text")
		f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "g"}},
			map[string]route.ServiceSpec{"g": {Protocol: route.ProtocolGRPC}})
		cc := grpcClient(t, h2cFront(t, f))
		if err := call(cc, grpctest.Echo); status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unreachable instance", func(t *testing.T) {
		_, cc := grpcFixture(t, route.ServiceSpec{}, deadAddr(t))
		err := call(cc, grpctest.Echo)
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != `ferry: upstream of service "g" failed` {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("connect failure goes to another instance", func(t *testing.T) {
		_, cc := grpcFixture(t, route.ServiceSpec{Retries: 1}, deadAddr(t), grpctest.Serve(t, "live", nil))
		for i := range 4 {
			if err := call(cc, grpctest.Echo); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
	})
	t.Run("grpc-timeout honoured by ferry", func(t *testing.T) {
		// An upstream that never answers: the deadline is ferry's to keep.
		_, cc := grpcFixture(t, route.ServiceSpec{}, silentH2(t))
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		var out []byte
		err := cc.Invoke(ctx, grpctest.Echo, &in, &out, grpctest.CallOption)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("response_timeout is DEADLINE_EXCEEDED", func(t *testing.T) {
		_, cc := grpcFixture(t, route.ServiceSpec{ResponseTimeout: 200 * time.Millisecond}, silentH2(t))
		err := call(cc, grpctest.Echo)
		if s := status.Convert(err); s.Code() != codes.DeadlineExceeded || s.Message() != `ferry: upstream of service "g" timed out` {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("upstream cut after the response started", func(t *testing.T) {
		_, cc := grpcFixture(t, route.ServiceSpec{}, cutH2(t))
		st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, grpctest.Count, grpctest.CallOption)
		if err != nil {
			t.Fatal(err)
		}
		n := []byte("3")
		st.SendMsg(&n)
		st.CloseSend()
		var m []byte
		if err := st.RecvMsg(&m); err != nil || string(m) != "first" {
			t.Fatalf("first message: %q %v", m, err)
		}
		if err := st.RecvMsg(&m); status.Code(err) != codes.Unavailable || !strings.HasPrefix(status.Convert(err).Message(), "ferry: upstream failed") {
			t.Fatalf("after the cut: %v", err)
		}
	})
}

// h2cBackend serves h over h2c with prior knowledge, closed at cleanup.
func h2cBackend(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	p.SetHTTP1(true)
	s := &http.Server{Handler: h, Protocols: &p}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln.Addr().String()
}

// silentH2 is an h2c upstream that never answers: it waits until its
// stream ends.
func silentH2(t *testing.T) string {
	return h2cBackend(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
}

// cutH2 sends a gRPC response head and one message "first", then resets
// the stream.
func cutH2(t *testing.T) string {
	return h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.Write([]byte{0, 0, 0, 0, 5, 'f', 'i', 'r', 's', 't'})
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	})
}

// A service that stops being routed while a stream runs keeps the stream;
// its HTTP/2 client is retired and its connection closed once the stream
// ends (the package's goroutine-leak check sees any transport left).
func TestGRPCStreamOutlivesItsService(t *testing.T) {
	f, cc := grpcFixture(t, route.ServiceSpec{}, grpctest.Serve(t, "a", nil))
	ctx := callCtx(t)
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, grpctest.Chat, grpctest.CallOption)
	if err != nil {
		t.Fatal(err)
	}
	round := func(i int) {
		t.Helper()
		m := []byte(strconv.Itoa(i))
		if err := st.SendMsg(&m); err != nil {
			t.Fatal(err)
		}
		var out []byte
		if err := st.RecvMsg(&out); err != nil || string(out) != "re:"+strconv.Itoa(i) {
			t.Fatalf("round %d: %q %v", i, out, err)
		}
	}
	round(1)
	f.route(nil, nil) // the service leaves the table
	round(2)
	st.CloseSend()
	var out []byte
	if err := st.RecvMsg(&out); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	in := []byte("x")
	if err := cc.Invoke(ctx, grpctest.Echo, &in, &out, grpctest.CallOption); status.Code(err) != codes.Unimplemented {
		t.Fatalf("after the service left: %v (a 404 is UNIMPLEMENTED to gRPC)", err)
	}
}

// response_timeout starts once the request body went: a client stream
// longer than it is not cut.
func TestGRPCClientStreamLongerThanResponseTimeout(t *testing.T) {
	_, cc := grpcFixture(t, route.ServiceSpec{ResponseTimeout: 100 * time.Millisecond}, grpctest.Serve(t, "a", nil))
	st, err := cc.NewStream(callCtx(t), &grpc.StreamDesc{ClientStreams: true}, grpctest.Sum, grpctest.CallOption)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := []byte(strconv.Itoa(i))
		if err := st.SendMsg(&m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // the stream outlasts response_timeout
	}
	st.CloseSend()
	var out []byte
	if err := st.RecvMsg(&out); err != nil || string(out) != "0+1+2" {
		t.Fatalf("got %q %v", out, err)
	}
}

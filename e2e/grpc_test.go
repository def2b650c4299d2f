package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ferry-proxy/ferry/internal/consultest"
	"github.com/ferry-proxy/ferry/internal/grpctest"
	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// gRPC end to end (SPEC §12): the real grpc-go client and server, ferry's
// binary between them, instances found in a real Consul. Clients reach
// ferry in h2c on a plain http2 listener and in h2 over TLS; ferry reaches
// the service "greet" in h2c and the service "vault" in h2 over mTLS.

type grpcEdge struct {
	f              *ferry
	ca             *testcerts.CA
	public, inside string
}

func startGRPCEdge(t *testing.T) *grpcEdge {
	t.Helper()
	agent := consultest.Start(t)
	ca := testcerts.NewCA(t, "grpc")
	clients := testcerts.NewCA(t, "grpc-clients")

	greet := grpctest.Serve(t, "greet-1", nil)
	vaultLeaf := ca.Leaf("vault", "vault.internal")
	vault := grpctest.Serve(t, "vault-1", &tls.Config{Certificates: []tls.Certificate{vaultLeaf.TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients.Pool})
	ferryClient := clients.Leaf("ferry", "ferry")
	for _, inst := range []struct{ service, id, addr string }{
		{"greet", "greet-1", greet}, {"vault", "vault-1", vault}, {"down", "down-1", deadAddr(t)},
	} {
		_, port, _ := strings.Cut(inst.addr, ":")
		p, _ := strconv.Atoi(port)
		register(t, agent.Client(), inst.service, &backend{Name: inst.id, Port: p})
	}

	edgeLeaf := ca.Leaf("edge", "edge.example", "vault.example", "down.example", "nobody.example")
	ports := consultest.FreePorts(t, 2)
	e := &grpcEdge{ca: ca, public: "127.0.0.1:" + strconv.Itoa(ports[0]), inside: "127.0.0.1:" + strconv.Itoa(ports[1])}
	e.f = startFerry(t, agent.HTTPAddr, `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
listener "public" {
  address = "`+e.public+`"
  http2   = true
  tls {
    certificate {
      cert_file = "`+edgeLeaf.CertFile+`"
      key_file  = "`+edgeLeaf.KeyFile+`"
    }
  }
}
listener "inside" {
  address = "`+e.inside+`"
  http2   = true
}
service "greet" {
  protocol = "grpc"
}
service "vault" {
  protocol = "grpc"
  tls {
    ca_file     = "`+ca.File+`"
    server_name = "vault.internal"
    cert_file   = "`+ferryClient.CertFile+`"
    key_file    = "`+ferryClient.KeyFile+`"
  }
}
service "down" {
  protocol = "grpc"
}
service "nobody" {
  protocol = "grpc"
}
route "vault" {
  host        = "vault.example"
  path_prefix = "/"
  service     = "vault"
}
route "down" {
  host        = "down.example"
  path_prefix = "/"
  service     = "down"
}
route "nobody" {
  host        = "nobody.example"
  path_prefix = "/"
  service     = "nobody"
}
route "greet" {
  path_prefix = "/"
  service     = "greet"
}
`)
	e.f.WaitReady()
	waitFor(t, 10*time.Second, "ferry routes to greet and vault", func() bool {
		return e.call(t, e.dial(t, false, ""), grpctest.Echo, "x") == nil &&
			e.call(t, e.dial(t, false, "vault.example"), grpctest.Echo, "x") == nil
	})
	return e
}

// dial returns a client of ferry: over TLS on the public listener, else in
// h2c on the inside one; authority names the route's host ("": any).
func (e *grpcEdge) dial(t *testing.T, overTLS bool, authority string) *grpc.ClientConn {
	t.Helper()
	var opts []grpc.DialOption
	target := e.inside
	switch {
	case overTLS:
		// The TLS server name is the call's authority (grpc-go insists).
		target = e.public
		name := authority
		if name == "" {
			name = "edge.example"
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.ca.Pool, ServerName: name})))
	case authority != "":
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
	default:
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	cc, err := grpc.NewClient("passthrough:///"+target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func (e *grpcEdge) call(t *testing.T, cc *grpc.ClientConn, method, in string, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, out := []byte(in), []byte(nil)
	return cc.Invoke(ctx, method, &m, &out, append(opts, grpctest.CallOption)...)
}

func TestGRPCThroughFerry(t *testing.T) {
	e := startGRPCEdge(t)
	for _, client := range []struct {
		name    string
		overTLS bool
	}{{"h2c", false}, {"h2 over TLS", true}} {
		for _, svc := range []struct{ name, authority, server string }{
			{"h2c upstream", "", "greet-1"}, {"mTLS upstream", "vault.example", "vault-1"},
		} {
			t.Run(client.name+" to "+svc.name, func(t *testing.T) {
				cc := e.dial(t, client.overTLS, svc.authority)
				grpcCalls(t, cc, svc.server)
			})
		}
	}
}

// grpcCalls makes each kind of call on cc, whose server is named server.
func grpcCalls(t *testing.T, cc *grpc.ClientConn, server string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil ||
		resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
	in, out := []byte("hello"), []byte(nil)
	var hdr, trl metadata.MD
	if err := cc.Invoke(ctx, grpctest.Echo, &in, &out, grpctest.CallOption, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil ||
		string(out) != "hello" || strings.Join(hdr.Get("x-server"), "") != server || strings.Join(trl.Get("x-trailer"), "") != "t-hello" {
		t.Fatalf("unary: %q %v header %v trailer %v", out, err, hdr, trl)
	}
	if err := cc.Invoke(ctx, grpctest.Fail, &in, &out, grpctest.CallOption); status.Code(err) != codes.NotFound {
		t.Fatalf("status: %v", err)
	}

	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, grpctest.Count, grpctest.CallOption)
	if err != nil {
		t.Fatal(err)
	}
	n := []byte("100")
	st.SendMsg(&n)
	st.CloseSend()
	got := 0
	for ; ; got++ {
		var m []byte
		if err := st.RecvMsg(&m); err == io.EOF {
			break
		} else if err != nil || string(m) != strconv.Itoa(got) {
			t.Fatalf("server stream, message %d: %q %v", got, m, err)
		}
	}
	if got != 100 {
		t.Fatalf("server stream: %d messages", got)
	}

	st, err = cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, grpctest.Sum, grpctest.CallOption)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		m := []byte(strconv.Itoa(i))
		st.SendMsg(&m)
	}
	st.CloseSend()
	var sum []byte
	if err := st.RecvMsg(&sum); err != nil || string(sum) != "0+1+2+3+4+5+6+7+8+9" {
		t.Fatalf("client stream: %q %v", sum, err)
	}

	st, err = cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, grpctest.Chat, grpctest.CallOption)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		m := []byte("m" + strconv.Itoa(i))
		if err := st.SendMsg(&m); err != nil {
			t.Fatal(err)
		}
		var r []byte
		if err := st.RecvMsg(&r); err != nil || string(r) != "re:m"+strconv.Itoa(i) {
			t.Fatalf("bidi round %d: %q %v", i, r, err)
		}
	}
	st.CloseSend()
	var r []byte
	if err := st.RecvMsg(&r); err != io.EOF {
		t.Fatalf("bidi end: %v", err)
	}
}

func TestGRPCFailuresAreStatuses(t *testing.T) {
	e := startGRPCEdge(t)
	for _, overTLS := range []bool{false, true} {
		// No instance in Consul, and an instance that refuses connections:
		// UNAVAILABLE, with HTTP 200 framing.
		for _, host := range []string{"nobody.example", "down.example"} {
			if err := e.call(t, e.dial(t, overTLS, host), grpctest.Echo, "x"); status.Code(err) != codes.Unavailable ||
				!strings.HasPrefix(status.Convert(err).Message(), "ferry: ") {
				t.Errorf("%s (TLS %v): %v", host, overTLS, err)
			}
		}
		// grpc-timeout: the call's deadline passes while the upstream
		// waits.
		cc := e.dial(t, overTLS, "")
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		in, out := []byte("x"), []byte(nil)
		err := cc.Invoke(ctx, grpctest.Hang, &in, &out, grpctest.CallOption)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("deadline (TLS %v): %v", overTLS, err)
		}
	}
}

// deadAddr is a loopback address that refuses connections.
func deadAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(consultest.FreePorts(t, 1)[0])
}

// An HTTP/1.1 client of ferry's plain listener (the fast lane) reaches a
// protocol = "http2" service over TLS: ferry converts both ways, trailers
// included.
func TestHTTP1ClientToH2Upstream(t *testing.T) {
	agent := consultest.Start(t)
	ca := testcerts.NewCA(t, "h2")
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Done")
		io.WriteString(w, r.Proto+" "+r.Method+" "+r.URL.RequestURI()+" "+string(body))
		w.Header().Set("X-Done", "yes")
	}))
	b.EnableHTTP2 = true
	b.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf("api", "127.0.0.1").TLS}}
	b.StartTLS()
	t.Cleanup(b.Close)
	_, port, _ := strings.Cut(b.Listener.Addr().String(), ":")
	p, _ := strconv.Atoi(port)
	register(t, agent.Client(), "api", &backend{Name: "api-1", Port: p})

	f := startFerry(t, agent.HTTPAddr, `
listen = "%LISTEN%"
admin  = "%ADMIN%"
consul {
  address = "%CONSUL%"
}
service "api" {
  protocol = "http2"
  tls {
    ca_file = "`+ca.File+`"
  }
}
route "api" {
  path_prefix = "/"
  service     = "api"
}
`)
	f.WaitReady()
	var p1 http.Protocols
	p1.SetHTTP1(true)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p1}}
	t.Cleanup(client.CloseIdleConnections)
	waitFor(t, 10*time.Second, "ferry routes to api", func() bool { return statusOf(f.URL+"/") == 200 })
	resp, err := client.Post(f.URL+"/items?x=1", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" || string(body) != "HTTP/2.0 POST /items?x=1 hello" ||
		resp.Trailer.Get("X-Done") != "yes" {
		t.Fatalf("got %d %s %q trailer %v", resp.StatusCode, resp.Proto, body, resp.Trailer)
	}
}

package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-proxy/ferry/internal/testcerts"
	"github.com/ferry-proxy/ferry/proxy/filter"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// HTTP/2 upstreams (protocol = "http2") reached by any client: the core
// converts the outbound HTTP/1.1 head to h2 and the h2 response back, so
// an HTTP/1.1 client of the fast lane gets the same answer as an h2 one.

// echoH2 answers with what it received, and a trailer.
func echoH2(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Trailer", "X-Sum")
	fmt.Fprintf(w, "%s %s %s host=%s x=%s te=%q body=%s", r.Proto, r.Method, r.RequestURI, r.Host,
		r.Header.Get("X-Thing"), r.Header.Get("Te"), body)
	if v := r.Trailer.Get("X-Check"); v != "" {
		fmt.Fprintf(w, " trailer=%s", v)
	}
	w.Header().Set("X-Sum", "42")
}

func TestH2UpstreamFromHTTP1Clients(t *testing.T) {
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2}}, setOf(t, "h", h2cBackend(t, echoH2)))

	req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/a%41b/c?q=1&r=%20", strings.NewReader("payload"))
	req.Header.Set("X-Thing", "v")
	req.Header.Set("Connection", "keep-alive")
	resp, body := f.do(req)
	want := "HTTP/2.0 POST /aAb/c?q=1&r=%20 host=" + strings.TrimPrefix(f.front.URL, "http://") + " x=v te=\"\" body=payload"
	if resp.StatusCode != 200 || body != want {
		t.Fatalf("got %d %q\nwant %q", resp.StatusCode, body, want)
	}
	// The h2 trailer reaches the HTTP/1.1 client as a chunked trailer.
	if resp.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
	if resp, body := f.get("/x?"); resp.StatusCode != 200 || !strings.Contains(body, "GET /x? ") {
		t.Fatalf("empty query: %d %q", resp.StatusCode, body)
	}

	// A chunked upload's trailers are forwarded as h2 trailers.
	pr, pw := io.Pipe()
	req, _ = http.NewRequest(http.MethodPut, f.front.URL+"/up", pr)
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Check": nil}
	go func() {
		io.WriteString(pw, "streamed")
		req.Trailer.Set("X-Check", "ok")
		pw.Close()
	}()
	if resp, body := f.do(req); resp.StatusCode != 200 || !strings.HasSuffix(body, "body=streamed trailer=ok") {
		t.Fatalf("chunked upload: %d %q", resp.StatusCode, body)
	}
}

// Route filters run for h2 upstreams as for HTTP/1.1 ones: request edits
// reach the upstream, response and body filters see its answer.
func TestH2UpstreamWithRouteFilters(t *testing.T) {
	var seen atomic.Value
	up := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Clone())
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Powered-By", "php")
		io.WriteString(w, "hello h2")
	})
	f := newFixture(t, "text")
	var flushes atomic.Int32
	chain := filter.NewChain([]string{"gate", "edit", "upper"}, []any{gateFilter{}, editFilter{}, upperFilter{&flushes}})
	f.route([]route.RouteSpec{{Name: "api", PathPrefix: "/", Service: "h", Filters: chain}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2}}, setOf(t, "h", up))
	req, _ := http.NewRequest(http.MethodGet, f.front.URL+"/x", nil)
	req.Header.Set("X-Key", "open")
	req.Header.Set("X-Debug", "1")
	resp, body := f.do(req)
	if resp.StatusCode != 200 || body != "HELLO H2" || resp.Header.Get("X-Powered-By") != "" ||
		resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	h := seen.Load().(http.Header)
	if h.Get("X-Env") != "prod" || h.Get("X-Debug") != "" || strings.Join(h.Values("X-Seen"), ",") != "1,2" {
		t.Fatalf("upstream saw %v", h)
	}
}

func TestH2UpstreamOverTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "upstream")
	leaf := ca.Leaf("backend", "127.0.0.1")
	b := httptest.NewUnstartedServer(http.HandlerFunc(echoH2))
	b.EnableHTTP2 = true
	b.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	b.StartTLS()
	t.Cleanup(b.Close)

	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2, TLS: &tls.Config{RootCAs: ca.Pool}}},
		setOf(t, "h", addr(b)))
	if resp, body := f.get("/tls"); resp.StatusCode != 200 || !strings.HasPrefix(body, "HTTP/2.0 GET /tls ") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}

	// An instance that does not speak h2 (no ALPN h2) is a connect
	// failure, never an HTTP/1.1 exchange.
	h1 := httptest.NewUnstartedServer(http.HandlerFunc(echoH2))
	h1.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, NextProtos: []string{"http/1.1"}}
	h1.StartTLS()
	t.Cleanup(h1.Close)
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2, TLS: &tls.Config{RootCAs: ca.Pool}}},
		setOf(t, "h", addr(h1)))
	if resp, _ := f.get("/tls"); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("h1-only instance: %d", resp.StatusCode)
	}
}

// A client that leaves while an h2 response streams ends the upstream
// stream (the fast lane's watcher, net/http's request context).
func TestH2UpstreamClientGoneEndsStream(t *testing.T) {
	ended := make(chan struct{})
	up := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
		close(ended)
	})
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2}}, setOf(t, "h", up))
	c := f.dial()
	io.WriteString(c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	line, _ := br.ReadString('\n') // the first chunk's size
	if line == "" {
		t.Fatal("no body")
	}
	c.Close()
	<-ended
	svc := f.handler.Table().Service("h")
	waitFor(t, "the instance's in-flight count released", func() bool {
		return svc.Upstreams()[0].Health.InFlight() == 0
	})
}

// An upgrade cannot go to an h2 upstream: 502, the upstream never asked.
func TestH2UpstreamRefusesUpgrade(t *testing.T) {
	var calls atomic.Int32
	up := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2}}, setOf(t, "h", up))
	req, _ := http.NewRequest(http.MethodGet, f.front.URL+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	if resp, _ := f.do(req); resp.StatusCode != http.StatusBadGateway || calls.Load() != 0 {
		t.Fatalf("got %d, %d upstream calls", resp.StatusCode, calls.Load())
	}
}

// A large body from an HTTP/1.1 client streams to the h2 upstream through
// the pump; an upstream that answers without reading it is relayed, and
// the client connection, its body unread, closes after the answer.
func TestH2UpstreamRequestBodies(t *testing.T) {
	up := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, "too big")
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	})
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2}}, setOf(t, "h", up))

	const size = 4 << 20
	req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/count", strings.NewReader(strings.Repeat("x", size)))
	if resp, body := f.do(req); resp.StatusCode != 200 || body != fmt.Sprint(size) {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}

	c := f.dial()
	fmt.Fprintf(c, "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	c.Write([]byte(strings.Repeat("y", 64<<10))) // the rest never comes
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(body) != "too big" || !resp.Close {
		t.Fatalf("got %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
}

// HEAD and 204 answers from an h2 upstream carry no body.
func TestH2UpstreamBodilessAnswers(t *testing.T) {
	up := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	})
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2}}, setOf(t, "h", up))
	req, _ := http.NewRequest(http.MethodHead, f.front.URL+"/x", nil)
	if resp, body := f.do(req); resp.StatusCode != 200 || body != "" || resp.ContentLength != 5 {
		t.Fatalf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp, body := f.get("/empty"); resp.StatusCode != 204 || body != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, body)
	}
	if resp, body := f.get("/x"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("GET after: %d %q", resp.StatusCode, body)
	}
}

// The one attempt policy holds for h2 upstreams: a stream reset after the
// request went is tried on another instance for an idempotent request
// without a body, never for a POST (it may have been executed).
func TestH2UpstreamRetryPolicy(t *testing.T) {
	var badGets, badPosts, goodPosts atomic.Int32
	bad := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			badPosts.Add(1)
		} else {
			badGets.Add(1)
		}
		panic(http.ErrAbortHandler) // RST_STREAM before any response byte
	})
	good := h2cBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			goodPosts.Add(1)
		}
		io.WriteString(w, "good")
	})
	f := newFixture(t, "text")
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "h"}},
		map[string]route.ServiceSpec{"h": {Protocol: route.ProtocolHTTP2, Retries: 1}}, setOf(t, "h", bad, good))
	for i := range 4 {
		if resp, body := f.get("/"); resp.StatusCode != 200 || body != "good" {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if badGets.Load() == 0 {
		t.Fatal("the resetting instance never got a GET: nothing was retried")
	}
	failed := 0
	for range 4 {
		req, _ := http.NewRequest(http.MethodPost, f.front.URL+"/", strings.NewReader("once"))
		if resp, _ := f.do(req); resp.StatusCode == http.StatusBadGateway {
			failed++
		}
	}
	if badPosts.Load()+goodPosts.Load() != 4 || int32(failed) != badPosts.Load() || failed == 0 {
		t.Fatalf("POSTs: %d on the resetting instance, %d on the good one, %d answered 502", badPosts.Load(), goodPosts.Load(), failed)
	}
}

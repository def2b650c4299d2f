package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/route"
	"github.com/ferry-proxy/ferry/proxy/wire"

	"github.com/ferry-proxy/ferry/proxy/core"
)

// Hot-path benchmarks that complete bench_test.go (the whole handler over
// loopback), match_test.go (route lookup), balancer_test.go (pick),
// path_test.go and stats_test.go (metric recording): a pick on the retry
// path and the outbound heads of both lanes. make bench-go runs them all.

// BenchmarkPickRetry measures each policy's pick when avoiding the instance
// a failed attempt used (the retry path). It must not allocate.
func BenchmarkPickRetry(b *testing.B) {
	reg := health.NewRegistry()
	ups := make([]*route.Upstream, 8)
	for i := range ups {
		inst := discovery.Instance{ID: fmt.Sprint(i), Node: "n", Address: "10.0.0.1", Port: 9000 + i, Weight: i + 1}
		ups[i] = route.NewUpstream(inst, reg.State("svc", inst.Key()))
	}
	for _, p := range route.Policies {
		bal, _ := route.NewBalancer(p, ups, new(atomic.Uint64))
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bal.Pick(ups, ups[3]) == nil {
					b.Fatal("nil pick")
				}
			}
		})
	}
}

// benchRequest is an inbound request with the headers a browser or an SDK
// sends, and one hop-by-hop header nominated by Connection.
func benchRequest() *http.Request {
	req := httptest.NewRequest(http.MethodGet, "http://ferry.local/api/user/42?x=1", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	h := req.Header
	h.Set("User-Agent", "bench/1.0")
	h.Set("Accept", "application/json")
	h.Set("Accept-Encoding", "gzip")
	h.Set("Authorization", "Bearer abc.def.ghi")
	h.Set("X-Request-Id", "0123456789abcdef")
	h.Set("X-Forwarded-For", "203.0.113.7")
	h.Set("Connection", "keep-alive, X-Hop")
	h.Set("X-Hop", "1")
	return req
}

// BenchmarkHTTPRequest measures the net/http lane's outbound head, written
// from the parsed request's header map: path, Host, fields sorted, hop-by-hop
// removal and X-Forwarded-*.
func BenchmarkHTTPRequest(b *testing.B) {
	for _, strip := range []bool{false, true} {
		b.Run(fmt.Sprintf("strip_prefix=%v", strip), func(b *testing.B) {
			rt := route.NewRoute(route.RouteSpec{Name: "users", PathPrefix: "/api/user", Service: "user", StripPrefix: strip})
			in := benchRequest()
			x := core.NewExchange()
			b.ReportAllocs()
			for b.Loop() {
				x.Reset(&httpDown{r: in}, time.Time{}, in.Method, rt, rt.Service(), "/api/user/42")
				x.Req = appendHTTPRequest(x.Req[:0], x, in, false, "127.0.0.1")
			}
		})
	}
}

// A browser-like request head, as the fast lane parses and rewrites it.
const benchHead = "GET /api/user/42?x=1 HTTP/1.1\r\nHost: ferry.local\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-GB,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\nCookie: session=abc123; theme=dark\r\n" +
	"X-Forwarded-For: 203.0.113.7\r\nX-Request-Id: 9f8e7d6c\r\n\r\n"

// BenchmarkParseHead measures the fast lane's request-head parse. It must
// not allocate.
func BenchmarkParseHead(b *testing.B) {
	buf := []byte(benchHead)
	var h wire.RequestHead
	b.ReportAllocs()
	for b.Loop() {
		if wire.ParseRequestHead(buf, &h, 100, 64<<10) != wire.HeadFast {
			b.Fatal("not fast")
		}
	}
}

// BenchmarkBuildRequest measures writing the outbound head: canonical path,
// hop-by-hop removal and X-Forwarded-* from an untrusted peer. It must not
// allocate.
func BenchmarkBuildRequest(b *testing.B) {
	buf := []byte(benchHead)
	var h wire.RequestHead
	if wire.ParseRequestHead(buf, &h, 100, 64<<10) != wire.HeadFast {
		b.Fatal("not fast")
	}
	rt := route.NewRoute(route.RouteSpec{Name: "users", PathPrefix: "/api/user", Service: "user"})
	hd := NewHandler(Options{})
	c := &fastConn{s: &Server{h: hd}, remote: "127.0.0.1:5555", clientIP: "127.0.0.1"}
	x := core.NewExchange()
	c.down.x = x
	b.ReportAllocs()
	for b.Loop() {
		x.Reset(&c.down, time.Time{}, h.Method, rt, rt.Service(), "/api/user/42")
		x.Req = appendFastRequest(x.Req[:0], x, &h, c)
	}
}

// BenchmarkParseResponse measures the fast lane's upstream response-head
// parse. It must not allocate.
func BenchmarkParseResponse(b *testing.B) {
	buf := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n" +
		"Date: Tue, 24 Nov 2026 20:00:00 GMT\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n" +
		"Set-Cookie: a=1; Path=/\r\nX-Request-Id: 9f8e7d6c\r\n\r\n")
	var r wire.ResponseHead
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := wire.ParseResponseHead(buf, &r); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

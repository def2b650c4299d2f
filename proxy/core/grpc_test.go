package core

import (
	"testing"
	"time"
)

func TestGRPCTimeout(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"1S": time.Second, "250m": 250 * time.Millisecond, "3H": 3 * time.Hour, "2M": 2 * time.Minute,
		"7u": 7 * time.Microsecond, "9n": 9, "99999999S": 99999999 * time.Second,
	} {
		if d, ok := grpcTimeout(v); !ok || d != want {
			t.Errorf("%q: %v %v, want %v", v, d, ok, want)
		}
	}
	for _, v := range []string{"", "S", "1", "1s", "-1S", "123456789S", "1.5S", " 1S"} {
		if d, ok := grpcTimeout(v); ok {
			t.Errorf("%q accepted as %v", v, d)
		}
	}
}

func TestGRPCRequest(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "Application/GRPC+raw": true,
		"application/grpc;charset=utf-8": true, "application/grpc-web": false, "application/json": false, "": false,
	} {
		if GRPCRequest(ct) != want {
			t.Errorf("%q: %v", ct, !want)
		}
	}
	head := []byte("POST /s/M HTTP/1.1\r\nHost: x\r\ncontent-type: application/grpc+raw\r\n\r\nbody")
	if !grpcRequest(head) || grpcRequest([]byte("POST / HTTP/1.1\r\nHost: x\r\n\r\nContent-Type: application/grpc")) {
		t.Fatal("grpcRequest reads the head only")
	}
}

func TestGRPCMessageIsPercentEncoded(t *testing.T) {
	if got := grpcMessage("a 100% \"ok\"\r\né"); got != "a 100%25 \"ok\"%0D%0A%C3%A9" {
		t.Fatalf("got %q", got)
	}
}

func TestParseH2Template(t *testing.T) {
	req := []byte("PUT /p/a%20b?x=1&y= HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\nKeep-Alive: 5\r\n" +
		"Transfer-Encoding: chunked\r\nTE: trailers, deflate\r\nTrailer: x-check\r\nX-A: 1\r\n\r\nheld")
	tm, err := parseH2Template(req)
	if err != nil {
		t.Fatal(err)
	}
	if tm.method != "PUT" || tm.path != "/p/a%20b" || tm.query != "x=1&y=" || tm.forceQuery || tm.host != "example.test" ||
		tm.length != -1 || string(tm.bodyHead) != "held" {
		t.Fatalf("%+v", tm)
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Host"} {
		if _, ok := tm.header[k]; ok {
			t.Errorf("%s kept", k)
		}
	}
	if tm.header.Get("Te") != "trailers" || tm.header.Get("X-A") != "1" || len(tm.trailer) != 1 || tm.trailer[0] != "X-Check" {
		t.Fatalf("header %v trailer %v", tm.header, tm.trailer)
	}
	u := h2URL("http", "10.0.0.1:80", tm.path, tm.query, tm.forceQuery)
	if u.RequestURI() != "/p/a%20b?x=1&y=" || u.Host != "10.0.0.1:80" {
		t.Fatalf("URL %v %q", u, u.RequestURI())
	}
	if tm, _ := parseH2Template([]byte("GET /e? HTTP/1.1\r\nHost: h\r\n\r\n")); !tm.forceQuery ||
		h2URL("http", "a:1", tm.path, tm.query, tm.forceQuery).RequestURI() != "/e?" {
		t.Fatal("an empty query is lost")
	}
}

package main

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestRedirectHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"shop.example", "shop.example"},
		{"Shop.Example:8080", "shop.example"},
		{"[::1]:8080", "[::1]"},
		{"[::1]", "[::1]"},
		{"[::1", ""},
		{"", ""},
		{"evil.example/x", ""},
		{"user@host", ""},
	} {
		if got := redirectHost(tc.in); got != tc.want {
			t.Errorf("redirectHost(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPeekPreface sends each start of a connection over a real socket pair
// in pieces, and checks the sorting and that the peeked bytes replay.
func TestPeekPreface(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
		h2     bool
	}{
		{"h2c preface", []string{h2Preface + "\x00\x00"}, true},
		{"h2c preface in pieces", []string{"PR", "I * HTTP/2", ".0\r\n\r\nSM\r\n\r\n"}, true},
		{"HTTP/1.1", []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, false},
		{"POST, sharing the first letter", []string{"P", "OST / HTTP/1.1\r\n\r\n"}, false},
		{"PRI as an HTTP/1.1 method", []string{"PRI /x HTTP/1.1\r\n\r\n"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			want := ""
			go func() {
				for _, c := range tc.chunks {
					client.Write([]byte(c))
					time.Sleep(time.Millisecond) // separate reads on the other side, usually
				}
				client.Close()
			}()
			for _, c := range tc.chunks {
				want += c
			}
			isH2, peeked, _ := peekPreface(server, time.Now().Add(5*time.Second))
			if isH2 != tc.h2 {
				t.Errorf("got h2=%v, want %v", isH2, tc.h2)
			}
			all, err := io.ReadAll(newPeekedConn(server, peeked))
			if err != nil || string(all) != want {
				t.Errorf("replayed %q, %v; want %q", all, err, want)
			}
		})
	}
}

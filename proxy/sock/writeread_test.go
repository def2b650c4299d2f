package sock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// pair returns a connected TCP client and the server side of it.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// answer reads want from c, waits delay, then writes reply.
func answer(t *testing.T, c net.Conn, want string, delay time.Duration, reply string) <-chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(c, buf); err != nil {
			done <- err
			return
		}
		if string(buf) != want {
			done <- errors.New("server read " + string(buf))
			return
		}
		time.Sleep(delay)
		_, err := c.Write([]byte(reply))
		done <- err
	}()
	return done
}

func TestWriteReadRoundTrip(t *testing.T) {
	for _, delay := range []time.Duration{0, 30 * time.Millisecond} {
		client, server := pair(t)
		var w WriteReader
		w.Bind(client)
		done := answer(t, server, "ping", delay, "pong")
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		in := make([]byte, 64)
		sent, n, err := w.WriteRead([]byte("ping"), in)
		if err != nil || sent != 4 || string(in[:n]) != "pong" {
			t.Fatalf("delay %v: sent %d, read %q, err %v", delay, sent, in[:n], err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// Many exchanges in a row on one connection: no readiness is lost between
// one answer and the next request (each would hang until the deadline).
func TestWriteReadManyInARow(t *testing.T) {
	client, server := pair(t)
	var w WriteReader
	w.Bind(client)
	go func() {
		buf := make([]byte, 4)
		for {
			if _, err := io.ReadFull(server, buf); err != nil {
				return
			}
			server.Write([]byte("pong"))
		}
	}()
	in := make([]byte, 64)
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range 2000 {
		sent, n, err := w.WriteRead([]byte("ping"), in)
		if err != nil || sent != 4 || string(in[:n]) != "pong" {
			t.Fatalf("exchange %d: sent %d, read %q, err %v", i, sent, in[:n], err)
		}
	}
}

func TestWriteReadPeerClosesWithoutAnswer(t *testing.T) {
	client, server := pair(t)
	var w WriteReader
	w.Bind(client)
	go func() {
		buf := make([]byte, 4)
		io.ReadFull(server, buf)
		server.Close()
	}()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	sent, n, err := w.WriteRead([]byte("ping"), make([]byte, 64))
	if sent != 4 || n != 0 || err != io.EOF {
		t.Fatalf("sent %d, n %d, err %v; want 4, 0, EOF", sent, n, err)
	}
}

func TestWriteReadPeerResets(t *testing.T) {
	client, server := pair(t)
	var w WriteReader
	w.Bind(client)
	go func() {
		buf := make([]byte, 4)
		io.ReadFull(server, buf)
		server.(*net.TCPConn).SetLinger(0) // close with RST
		server.Close()
	}()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	sent, n, err := w.WriteRead([]byte("ping"), make([]byte, 64))
	if sent != 4 || n != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("sent %d, n %d, err %v; want 4, 0, ECONNRESET", sent, n, err)
	}
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "read" {
		t.Fatalf("err %v (%T) is not shaped as net.Conn's read errors", err, err)
	}
}

func TestWriteReadDeadline(t *testing.T) {
	client, _ := pair(t)
	var w WriteReader
	w.Bind(client)
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	sent, n, err := w.WriteRead([]byte("ping"), make([]byte, 64))
	if sent != 4 || n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("sent %d, n %d, err %v; want a deadline error after sending", sent, n, err)
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("err %v is not a net.Error timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %v past a 50 ms deadline", d)
	}
}

// A request the socket will not take at once is left to the caller, who
// writes the rest with its own write deadline.
func TestWriteReadShortWrite(t *testing.T) {
	client, server := pair(t)
	client.(*net.TCPConn).SetWriteBuffer(4096)
	server.(*net.TCPConn).SetReadBuffer(4096)
	var w WriteReader
	w.Bind(client)
	out := bytes.Repeat([]byte("x"), 16<<20)
	sent, n, err := w.WriteRead(out, make([]byte, 64))
	if err != nil || n != 0 || sent <= 0 || sent >= len(out) {
		t.Fatalf("sent %d of %d, n %d, err %v; want a short write and no error", sent, len(out), n, err)
	}
}

func TestWriteReadNotASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var w WriteReader
	w.Bind(a)
	if sent, n, err := w.WriteRead([]byte("ping"), make([]byte, 8)); sent != 0 || n != 0 || err != nil {
		t.Fatalf("got %d, %d, %v; want nothing done", sent, n, err)
	}
}

func TestWriteReadAllocatesNothing(t *testing.T) {
	client, server := pair(t)
	var w WriteReader
	w.Bind(client)
	go func() {
		buf, pong := make([]byte, 4), []byte("pong") // the server allocates nothing per round either
		for {
			if _, err := io.ReadFull(server, buf); err != nil {
				return
			}
			server.Write(pong)
		}
	}()
	out, in := []byte("ping"), make([]byte, 64)
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	allocs := testing.AllocsPerRun(200, func() {
		if _, _, err := w.WriteRead(out, in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("WriteRead allocates %.1f times per call", allocs)
	}
}

// A read deadline already past (a request that waited in a queue) writes
// nothing: the caller's own Write and Read then go on as they would have.
func TestWriteReadDeadlineAlreadyPast(t *testing.T) {
	client, server := pair(t)
	var w WriteReader
	w.Bind(client)
	client.SetReadDeadline(time.Now().Add(-time.Second))
	if sent, n, err := w.WriteRead([]byte("ping"), make([]byte, 8)); sent != 0 || n != 0 || err != nil {
		t.Fatalf("got %d, %d, %v; want nothing done", sent, n, err)
	}
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _ := server.Read(make([]byte, 8)); n != 0 {
		t.Fatalf("the server got %d bytes", n)
	}
}

package accesslog

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAccessLogFileParallel writes access log lines to a real file from
// every core: one write(2) per line, no lock of ours around it.
func BenchmarkAccessLogFileParallel(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	l := New(f, "text")
	e := Entry{Start: time.Now(), Duration: time.Millisecond, Client: "127.0.0.1:5555", Method: "GET",
		Host: "x", Path: "/api/user/1", Proto: "HTTP/1.1", Status: 200, BytesSent: 64,
		Route: "users", Service: "user", Upstream: "127.0.0.1:9001", Attempts: 1}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		e := e
		for pb.Next() {
			l.Log(&e)
		}
	})
}

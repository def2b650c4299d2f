package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/discovery"
	"github.com/ferry-proxy/ferry/health"

	"github.com/ferry-proxy/ferry/proxy/accesslog"
	"github.com/ferry-proxy/ferry/proxy/route"
)

// BenchmarkIdleConnMemory measures what an idle keep-alive client connection
// costs the Server: N connections each send one GET, read the answer and
// stay open; once they are idle, the benchmark reports per connection the
// growth of RSS (/proc/self/status), of live heap objects, of goroutine
// stacks, and the goroutine count. The clients are raw blocking sockets made
// with system calls, outside Go's heap and poller, so the figures are the
// server side's alone (the kernel's socket memory is not in RSS). Run once
// per size: go test -run '^$' -bench IdleConnMemory -benchtime 1x ./proxy/
// (IDLE_HEAP_PROFILE=file writes the heap profile at the idle point).
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				measureIdleConns(b, n)
			}
		})
	}
}

func measureIdleConns(b *testing.B, n int) {
	raiseFileLimit(b, n+1024)
	if os.Getenv("IDLE_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	beAddr := cannedBackend(b)
	builder := route.NewBuilder(health.NewRegistry(), nil)
	defer builder.Close()
	h := NewHandler(Options{AccessLog: accesslog.New(io.Discard, "text")})
	h.Store(builder.Build([]route.RouteSpec{{Name: "users", PathPrefix: "/", Service: "user"}}, nil,
		map[string]*discovery.InstanceSet{"user": setOf(b, "user", beAddr)}))
	front := newFrontend(b, h)
	defer front.Close()
	sa := sockaddrOf(b, front.Listener.Addr().String())

	// Warm the process (pools, the first worker goroutines) before the
	// baseline.
	warm := dialRaw(b, sa)
	exchangeRaw(b, warm)
	syscall.Close(warm)
	before := idleSnapshot()

	// The clients live in a child process (this test binary again, see
	// TestIdleClientProcess): one process cannot hold both ends of 10,000
	// connections under a 20,000 descriptor limit.
	cmd := exec.Command(os.Args[0], "-test.run", "^TestIdleClientProcess$", "-test.bench", "^$")
	cmd.Env = append(os.Environ(), "FERRY_IDLE_CLIENT="+front.Listener.Addr().String()+","+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the child closes its sockets and exits
		cmd.Wait()
	}()
	br := bufio.NewReader(stdout)
	if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
		rest, _ := io.ReadAll(br)
		b.Fatalf("client process: %q %v\n%s", line, err, rest)
	}
	// Let the connections go idle (and park, where the server parks them).
	time.Sleep(2 * time.Second)
	after := idleSnapshot()
	debug.FreeOSMemory() // what the scavenger would return to the OS in time
	scavenged := vmRSS()
	if p := os.Getenv("IDLE_HEAP_PROFILE"); p != "" {
		if f, err := os.Create(p + "." + strconv.Itoa(n)); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	for name, v := range after.classes { // go test -v shows where the runtime's bytes went
		if d := per(v, before.classes[name]); d >= 1 || d <= -1 {
			b.Logf("%-50s %8.0f B/conn", name, d)
		}
	}
	b.ReportMetric(per(after.rss, before.rss), "rss-B/conn")
	b.ReportMetric(per(scavenged, before.rss), "rss-scavenged-B/conn")
	b.ReportMetric(per(after.heap, before.heap), "heap-B/conn")
	b.ReportMetric(per(after.free, before.free), "heap-free-B/conn")
	b.ReportMetric(per(after.other, before.other), "runtime-other-B/conn")
	b.ReportMetric(per(after.stacks, before.stacks), "stack-B/conn")
	b.ReportMetric(per(after.goroutines, before.goroutines), "goroutines/conn")
	if after.goroutines > before.goroutines {
		b.ReportMetric(float64(after.stacks-before.stacks)/float64(after.goroutines-before.goroutines), "stack-B/goroutine")
	}
}

// TestIdleClientProcess is BenchmarkIdleConnMemory's client process, run
// only as that (FERRY_IDLE_CLIENT=addr,n): it opens n connections, sends one
// GET on each, says "ready" and holds them until its stdin closes.
func TestIdleClientProcess(t *testing.T) {
	spec := os.Getenv("FERRY_IDLE_CLIENT")
	if spec == "" {
		t.Skip("the client half of BenchmarkIdleConnMemory")
	}
	address, count, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(count)
	raiseFileLimit(t, n+256)
	sa := sockaddrOf(t, address)
	for range n {
		exchangeRaw(t, dialRaw(t, sa)) // closed when the process exits
	}
	os.Stdout.WriteString("ready\n")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

type memSnapshot struct {
	rss, heap, stacks, goroutines, free, other uint64
	classes                                    map[string]uint64 // every /memory/classes/ metric
}

// idleSnapshot collects garbage (twice: sync.Pool keeps a victim cache for
// one cycle) and reads RSS and the runtime's accounts of live memory.
func idleSnapshot() memSnapshot {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/free:bytes"},      // free, not returned to the OS: in RSS
		{Name: "/memory/classes/metadata/other:bytes"}, // the runtime's own (poll descriptors among them)
		{Name: "/memory/classes/other:bytes"},
	}
	var all []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") {
			all = append(all, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(all)
	classes := map[string]uint64{}
	for _, c := range all {
		classes[c.Name] = c.Value.Uint64()
	}
	metrics.Read(s)
	return memSnapshot{classes: classes, rss: vmRSS(), heap: s[0].Value.Uint64(), stacks: s[1].Value.Uint64(), goroutines: s[2].Value.Uint64(),
		free: s[3].Value.Uint64(), other: s[4].Value.Uint64() + s[5].Value.Uint64()}
}

func vmRSS() uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// raiseFileLimit makes room for want descriptors, or skips.
func raiseFileLimit(b testing.TB, want int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Skip(err)
	}
	if rl.Cur >= uint64(want) {
		return
	}
	rl.Cur = max(rl.Max, uint64(want))
	rl.Max = rl.Cur
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		b.Skipf("RLIMIT_NOFILE below %d and cannot be raised: %v", want, err)
	}
}

// cannedBackend answers every request read with a 64-byte response.
func cannedBackend(b testing.TB) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func sockaddrOf(b testing.TB, address string) *syscall.SockaddrInet4 {
	ap, err := netAddrPort(address)
	if err != nil {
		b.Fatal(err)
	}
	return ap
}

func netAddrPort(address string) (*syscall.SockaddrInet4, error) {
	a, err := net.ResolveTCPAddr("tcp4", address)
	if err != nil {
		return nil, err
	}
	sa := &syscall.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	return sa, nil
}

// dialRaw opens a blocking TCP socket outside Go's poller.
func dialRaw(b testing.TB, sa *syscall.SockaddrInet4) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	err = syscall.Connect(fd, sa)
	// Interrupted by the runtime's preemption signal, the connection goes
	// on in the background: ask again until it is made.
	for err == syscall.EINTR || err == syscall.EALREADY {
		if err == syscall.EALREADY {
			time.Sleep(time.Millisecond)
		}
		if err = syscall.Connect(fd, sa); err == syscall.EISCONN {
			err = nil
		}
	}
	if err != nil {
		syscall.Close(fd)
		b.Fatal(err)
	}
	tv := syscall.NsecToTimeval(int64(10 * time.Second))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	return fd
}

// exchangeRaw sends one GET on fd and reads its whole answer.
func exchangeRaw(b testing.TB, fd int) {
	req := []byte("GET /x HTTP/1.1\r\nHost: ferry.local\r\n\r\n")
	for {
		_, err := syscall.Write(fd, req) // a short write cannot happen to an empty socket
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		break
	}
	var buf [512]byte
	n := 0
	for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok")) {
		k, err := syscall.Read(fd, buf[n:])
		if err == syscall.EINTR { // the runtime's preemption signal
			continue
		}
		if err != nil || k == 0 {
			b.Fatalf("reading the answer: %v (%q)", err, buf[:n])
		}
		n += k
	}
}

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// TestIdleKeepAliveConnections: 3,000 client connections each get an answer
// and stay open and quiet (ferry parks them: no goroutine, no buffer), then
// each sends another request on the same connection and gets its answer.
// The log reports ferry's RSS growth per idle connection (a figure, not
// asserted; ferry is a -race build here: make bench, scenario j, measures
// the real one). Bounded to a minute.
func TestIdleKeepAliveConnections(t *testing.T) {
	agent := consultest.Start(t)
	b := startBackend(t, "user-1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	})
	register(t, agent.Client(), "user", b)
	f := startFerry(t, agent.HTTPAddr, basicConfig)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 1)

	const conns = 3000
	addr := strings.TrimPrefix(f.URL, "http://")
	deadline := time.Now().Add(60 * time.Second)
	pid := f.cmd.Process.Pid
	before := rssKiB(pid)

	type held struct {
		c  net.Conn
		br *bufio.Reader
	}
	get := func(h *held, path string) error {
		if _, err := io.WriteString(h.c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(h.br, nil)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != path {
			return fmt.Errorf("GET %s: %d %q %v", path, resp.StatusCode, body, err)
		}
		return nil
	}
	// forEach runs fn on every connection, 100 at a time, and returns the
	// first failure and how many failed.
	forEach := func(hs []*held, fn func(i int, h *held) error) (int, error) {
		var mu sync.Mutex
		var first error
		failed := 0
		var wg sync.WaitGroup
		sem := make(chan struct{}, 100)
		for i, h := range hs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := fn(i, h); err != nil {
					mu.Lock()
					failed++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return failed, first
	}

	hs := make([]*held, conns)
	t.Cleanup(func() {
		for _, h := range hs {
			if h != nil {
				h.c.Close()
			}
		}
	})
	if n, err := forEach(hs, func(i int, _ *held) error {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		c.SetDeadline(deadline)
		h := &held{c: c, br: bufio.NewReaderSize(c, 512)}
		hs[i] = h
		return get(h, "/api/user/open/"+strconv.Itoa(i))
	}); err != nil {
		t.Fatalf("%d of %d connections failed their first request, first: %v", n, conns, err)
	}

	time.Sleep(3 * time.Second) // quiet: ferry parks them
	idle := rssKiB(pid)
	// ferry runs here as a -race build, whose shadow memory multiplies
	// every figure: make bench (scenario j) measures the real build.
	t.Logf("ferry (-race build) RSS %d KiB before, %d KiB with %d idle keep-alive connections: %.0f bytes per idle connection",
		before, idle, conns, float64(idle-before)*1024/conns)

	if n, err := forEach(hs, func(i int, h *held) error {
		return get(h, "/api/user/again/"+strconv.Itoa(i))
	}); err != nil {
		t.Fatalf("%d of %d idle connections failed their second request, first: %v", n, conns, err)
	}
}

// rssKiB is a process's VmRSS.
func rssKiB(pid int) int64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// TestBurstIsQueuedNotRefused: 3,000 client connections each send one GET
// at once and stay open, against a service at the default max_requests
// (1,024): the requests beyond it wait in the service's queue (4,096), and every
// one gets its 200 (nginx answers all of them too). Bounded to a minute.
func TestBurstIsQueuedNotRefused(t *testing.T) {
	agent := consultest.Start(t)
	b := startBackend(t, "user-1", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond) // long enough for the burst to fill max_requests
		io.WriteString(w, "ok")
	})
	register(t, agent.Client(), "user", b)
	// A generous connect_timeout: the test's own backend, in a process
	// with thousands of goroutines under the race detector, can be slow to
	// accept; the queue is what is under test.
	f := startFerry(t, agent.HTTPAddr, basicConfig+`
service "user" {
  connect_timeout = "15s"
}
`)
	f.WaitReady()
	waitForInstances(t, f, "/api/user/x", 1)

	const conns = 3000
	addr := strings.TrimPrefix(f.URL, "http://")
	deadline := time.Now().Add(60 * time.Second)
	var mu sync.Mutex
	statuses := map[int]int{}
	var failures []string
	var answered, all sync.WaitGroup
	release := make(chan struct{})
	start := time.Now()
	for i := 0; i < conns; i++ {
		answered.Add(1)
		all.Add(1)
		go func() {
			defer all.Done()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				answered.Done()
				return
			}
			defer c.Close()
			c.SetDeadline(deadline)
			_, err = io.WriteString(c, "GET /api/user/burst HTTP/1.1\r\nHost: x\r\n\r\n")
			var resp *http.Response
			if err == nil {
				resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			}
			mu.Lock()
			if err != nil {
				failures = append(failures, err.Error())
			} else {
				io.Copy(io.Discard, resp.Body)
				statuses[resp.StatusCode]++
			}
			mu.Unlock()
			answered.Done()
			<-release // the connection stays open until every client has its answer
		}()
	}
	answered.Wait()
	took := time.Since(start)
	close(release)
	all.Wait()
	t.Logf("%d connections: %v in %v", conns, statuses, took.Round(time.Millisecond))
	if len(failures) > 0 {
		t.Errorf("%d clients failed, first: %s", len(failures), failures[0])
	}
	if statuses[200] != conns {
		t.Errorf("got %v, want %d × 200", statuses, conns)
	}
}

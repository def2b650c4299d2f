package compose

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// load is a set of steady request loops through the edge, as the clients of
// the deployment: each loop sends one request, waits for its answer, pauses
// a little and sends the next. It counts what it sent and what failed (a
// transport error or any status but 200) and when each backend last answered.
// Safe for concurrent use; Stop ends the loops and waits for them.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	sent      int64
	failed    int64
	failures  []string             // the first few, for the report
	firstSeen map[string]time.Time // backend name → first answer
	lastSeen  map[string]time.Time // backend name → last answer
}

// answeredBy finds the backends named in an answer: "user-1 answered …",
// and for /api/order both "order answered" and the user replica it called.
var answeredBy = regexp.MustCompile(`([a-z]+(?:-[0-9]+)?) answered`)

// loadPace is the pause between two requests of a loop: 4 loops at about 40
// requests a second each, light enough for a shared 2-core machine.
const loadPace = 25 * time.Millisecond

// startLoad starts loops against base (http://127.0.0.1:port), alternating
// between the user and the order routes.
func startLoad(base string, loops int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, firstSeen: map[string]time.Time{}, lastSeen: map[string]time.Time{}}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: loops},
	}
	for i := range loops {
		path := "/api/user/"
		if i%2 == 1 {
			path = "/api/order/"
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				l.once(ctx, client, fmt.Sprintf("%s%s%d-%d", base, path, i, n))
				select {
				case <-ctx.Done():
				case <-time.After(loadPace):
				}
			}
		}()
	}
	return l
}

// once sends one request and records its outcome. A request cut short by
// Stop is not counted.
func (l *load) once(ctx context.Context, client *http.Client, url string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	switch {
	case err != nil:
		l.fail(now, url, err.Error())
	case resp.StatusCode != http.StatusOK:
		l.fail(now, url, fmt.Sprintf("%d %q", resp.StatusCode, body))
	default:
		for _, m := range answeredBy.FindAllSubmatch(body, -1) {
			name := string(m[1])
			if _, ok := l.firstSeen[name]; !ok {
				l.firstSeen[name] = now
			}
			l.lastSeen[name] = now
		}
	}
}

func (l *load) fail(at time.Time, url, what string) {
	l.failed++
	if len(l.failures) < 20 {
		l.failures = append(l.failures, at.Format("15:04:05.000")+" GET "+url+": "+what)
	}
}

// counts returns the requests sent and failed so far.
func (l *load) counts() (sent, failed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent, l.failed
}

// seen returns when a backend first and last answered (zero: never).
func (l *load) seen(name string) (first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstSeen[name], l.lastSeen[name]
}

// failureSamples returns the first recorded failures.
func (l *load) failureSamples() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

// stop ends the loops and waits for them.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

package discovery

import (
	"go.uber.org/goleak"

	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// fakeHealth is a HealthClient whose every call waits for the test to answer
// it: the test takes the call with next, inspects its options and replies.
// A call left unanswered blocks like a long poll until its context is done.
type fakeHealth struct {
	mu    sync.Mutex
	calls map[string]chan *fakeCall
}

type fakeCall struct {
	service, tag string
	passing      bool
	opts         api.QueryOptions
	ctx          context.Context
	at           time.Time
	reply        chan fakeReply
}

type fakeReply struct {
	entries []*api.ServiceEntry
	meta    *api.QueryMeta
	err     error
}

func newFakeHealth() *fakeHealth { return &fakeHealth{calls: make(map[string]chan *fakeCall)} }

func (f *fakeHealth) ch(service string) chan *fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.calls[service]
	if !ok {
		c = make(chan *fakeCall, 16)
		f.calls[service] = c
	}
	return c
}

func (f *fakeHealth) Service(service, tag string, passing bool, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	ctx := q.Context()
	c := &fakeCall{service: service, tag: tag, passing: passing, opts: *q, ctx: ctx, at: time.Now(), reply: make(chan fakeReply, 1)}
	select {
	case f.ch(service) <- c:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.entries, r.meta, r.err
	case <-ctx.Done():
		// What the real client returns when the context is cancelled.
		return nil, nil, fmt.Errorf("Get \"http://consul/v1/health/service/%s\": %w", service, ctx.Err())
	}
}

// next returns the next call for service, failing the test after 5s.
func (f *fakeHealth) next(t *testing.T, service string) *fakeCall {
	t.Helper()
	select {
	case c := <-f.ch(service):
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("no query for %q within 5s", service)
		return nil
	}
}

// noCall fails the test if service is queried within d.
func (f *fakeHealth) noCall(t *testing.T, service string, d time.Duration) {
	t.Helper()
	select {
	case c := <-f.ch(service):
		t.Fatalf("unexpected query for %q (WaitIndex %d)", service, c.opts.WaitIndex)
	case <-time.After(d):
	}
}

func (c *fakeCall) ok(index uint64, entries ...*api.ServiceEntry) {
	c.reply <- fakeReply{entries: entries, meta: &api.QueryMeta{LastIndex: index, KnownLeader: true, QueryBackend: api.QueryBackendBlockingQuery}}
}

func (c *fakeCall) noLeader(index uint64, entries ...*api.ServiceEntry) {
	c.reply <- fakeReply{entries: entries, meta: &api.QueryMeta{LastIndex: index, KnownLeader: false, QueryBackend: api.QueryBackendBlockingQuery}}
}

func (c *fakeCall) streaming(index uint64, entries ...*api.ServiceEntry) {
	// The streaming backend never reports a known leader.
	c.reply <- fakeReply{entries: entries, meta: &api.QueryMeta{LastIndex: index, QueryBackend: api.QueryBackendStreaming}}
}

func (c *fakeCall) fail(err error) { c.reply <- fakeReply{err: err} }

var errConsulDown = errors.New("dial tcp 127.0.0.1:8500: connect: connection refused")

// cancelled reports whether the call's context was cancelled within d.
func (c *fakeCall) cancelled(d time.Duration) bool {
	if c.ctx.Err() != nil {
		return true
	}
	select {
	case <-c.ctx.Done():
		return true
	case <-time.After(d):
		return false
	}
}

// testTiming shrinks the loop's pacing so that sequences run fast, keeping
// the spin and confirm waits long enough to measure.
var testTiming = timing{
	floorMin:      time.Millisecond,
	floorJitter:   time.Millisecond,
	spinThreshold: 150 * time.Millisecond,
	spinWait:      200 * time.Millisecond,
	confirmWait:   200 * time.Millisecond,
	confirmWindow: 600 * time.Millisecond,
	backoffBase:   5 * time.Millisecond,
	backoffCap:    40 * time.Millisecond,
	queryMargin:   5 * time.Second,
	readTimeout:   10 * time.Second,
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Output: t.Output(), Level: hclog.Trace})
}

// run starts m.Run and returns a stop function that cancels it and checks
// that it returns promptly. stop is idempotent.
func run(t *testing.T, m *Manager) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5s of cancel")
			}
		})
	}
}

// newTestManager returns a Manager on f with test timing, watching ws.
// runWeb runs a test manager watching "web" through a fake client until the
// test ends, then checks that no goroutine outlived it.
func runWeb(t *testing.T) (*fakeHealth, *Manager) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs after the manager stops
	f := newFakeHealth()
	m := newTestManager(t, f, Options{}, Watch{Service: "web"})
	t.Cleanup(run(t, m))
	return f, m
}

func newTestManager(t *testing.T, f HealthClient, opts Options, ws ...Watch) *Manager {
	opts.Health = f
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	m := New(opts)
	m.timing = testTiming
	m.Watch(ws)
	return m
}

// waitChanged waits for a Changed signal, failing after 5s.
func waitChanged(t *testing.T, m *Manager) {
	t.Helper()
	select {
	case <-m.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("no Changed signal within 5s")
	}
}

// drain empties the Changed channel.
func drain(m *Manager) {
	select {
	case <-m.Changed():
	default:
	}
}

// noChange fails if Changed is pending.
func noChange(t *testing.T, m *Manager) {
	t.Helper()
	select {
	case <-m.Changed():
		t.Fatal("unexpected Changed signal")
	default:
	}
}

func keys(set *InstanceSet) []string {
	var out []string
	for _, in := range set.Instances {
		out = append(out, in.Key())
	}
	return out
}

package certs

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/internal/testcerts"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// logBuffer collects a logger's lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the lines holding every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// TestExpiryWarning: a certificate within 14 days of its expiry is logged
// at start, once per UTC day (a reload the same day says nothing more, the
// polls of the next day say it again), not once renewed; one far from
// expiry never is; an expired one is logged as an error.
func TestExpiryWarning(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	start := time.Now()
	soon := ca.LeafUntil(start.Add(5*24*time.Hour), "soon", "soon.example")
	later := ca.LeafUntil(start.Add(20*24*time.Hour), "later", "later.example")
	soonPair, laterPair := live(t, soon), live(t, later)
	clk := &clock{now: start}
	logs := &logBuffer{}
	s, err := New(Options{
		Certificates: []Pair{soonPair, laterPair},
		Interval:     time.Millisecond,
		Now:          clk.Now,
		Logger:       hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs}),
	})
	if err != nil {
		t.Fatal(err)
	}
	const warning = "expires in less than 14 days"
	if got := logs.lines(warning, soonPair.CertFile, "days_left=4"); len(got) != 1 {
		t.Fatalf("at start: %d warnings for the certificate expiring in 5 days, want 1:\n%s", len(got), logs.b.String())
	}
	if got := logs.lines(warning, laterPair.CertFile); len(got) != 0 {
		t.Errorf("a certificate expiring in 20 days was warned about: %q", got)
	}

	// A reload the same day: no second warning.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := logs.lines(warning); len(got) != 1 {
		t.Errorf("after a reload the same day: %d warnings, want still 1", len(got))
	}

	// The polls (Run) of the next day warn again, once.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	clk.Add(24 * time.Hour)
	waitFor(t, "the next day's warning", func() bool { return len(logs.lines(warning, soonPair.CertFile, "days_left=3")) == 1 })
	for range 5 { // more checks the same day (what Run's polls do): still one warning
		s.mu.Lock()
		s.checkExpiry()
		s.mu.Unlock()
	}
	if got := logs.lines(warning, soonPair.CertFile); len(got) != 2 {
		t.Errorf("over two days: %d warnings, want 2:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := logs.lines(warning, laterPair.CertFile); len(got) != 0 {
		t.Errorf("a certificate expiring in 19 days was warned about: %q", got)
	}

	// Renewed: the new certificate is far from expiry; the next day says nothing.
	ca.LeafUntil(start.Add(90*24*time.Hour), "renewed", "soon.example").WriteTo(t, soonPair.CertFile, soonPair.KeyFile)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	clk.Add(24 * time.Hour)
	// "later" (20 days at start) now has 18 days left; 5 more days and it
	// is inside the window.
	clk.Add(5 * 24 * time.Hour)
	waitFor(t, "the warning for the other certificate", func() bool { return len(logs.lines(warning, laterPair.CertFile)) == 1 })
	if got := logs.lines(warning, soonPair.CertFile); len(got) != 2 {
		t.Errorf("the renewed certificate was warned about: %d warnings for its file, want the 2 from before", len(got))
	}

	// Past its expiry: an error, once a day.
	clk.Add(14 * 24 * time.Hour)
	waitFor(t, "the expired certificate's error", func() bool {
		return len(logs.lines("[ERROR]", "has expired", laterPair.CertFile)) == 1
	})
	if st := s.Stats(); len(st.Certificates) != 2 || DaysLeft(st.Certificates[1].NotAfter, clk.Now()) >= 0 {
		t.Errorf("stats: %+v", st)
	}
}

func TestDaysLeft(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		left time.Duration
		want int
	}{
		{0, 0}, {time.Hour, 0}, {24 * time.Hour, 1}, {47 * time.Hour, 1}, {14 * 24 * time.Hour, 14},
		{-time.Hour, -1}, {-24 * time.Hour, -1}, {-25 * time.Hour, -2},
	} {
		if got := DaysLeft(now.Add(tc.left), now); got != tc.want {
			t.Errorf("DaysLeft(now%+v) = %d, want %d", tc.left, got, tc.want)
		}
	}
}

// TestStatsLastErrorPerCertificate: a broken file is named on the
// certificate it keeps serving, and cleared once it loads again.
func TestStatsLastErrorPerCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	a, b := live(t, ca.Leaf("a", "a.example")), live(t, ca.Leaf("b", "b.example"))
	s := newStore(t, Options{Certificates: []Pair{a, b}})
	if err := os.WriteFile(b.CertFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatal("reload of a broken file: no error")
	}
	st := s.Stats()
	if st.Certificates[0].LastError != "" || !strings.Contains(st.Certificates[1].LastError, b.CertFile) || st.LastError == "" {
		t.Errorf("after a broken reload: %+v", st)
	}
	if len(st.Certificates[1].Names) != 1 || st.Certificates[1].Names[0] != "b.example" || st.Certificates[1].KeyFile != b.KeyFile {
		t.Errorf("the certificate kept: %+v", st.Certificates[1])
	}
	ca.Leaf("b2", "b.example").WriteTo(t, b.CertFile, b.KeyFile)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Certificates[1].LastError != "" || st.LastError != "" {
		t.Errorf("after a clean reload: %+v", st)
	}
}

// TestExpiryWarningNotRepeatedByAReplacingStore: a store rebuilt for the
// same listener (a reload that changed it) does not warn again the same day,
// and does the next day.
func TestExpiryWarningNotRepeatedByAReplacingStore(t *testing.T) {
	ca := testcerts.NewCA(t, "ca")
	start := time.Now()
	p := live(t, ca.LeafUntil(start.Add(3*24*time.Hour), "soon", "soon.example"))
	clk := &clock{now: start}
	logs := &logBuffer{}
	opts := Options{Certificates: []Pair{p}, Now: clk.Now,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: logs})}
	first, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Replaces, opts.HTTP2 = first, true
	second, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	const warning = "expires in less than 14 days"
	if got := logs.lines(warning); len(got) != 1 {
		t.Fatalf("two stores for one listener the same day: %d warnings, want 1", len(got))
	}
	clk.Add(24 * time.Hour)
	second.mu.Lock()
	second.checkExpiry()
	second.mu.Unlock()
	if got := logs.lines(warning); len(got) != 2 {
		t.Errorf("the next day: %d warnings, want 2", len(got))
	}
	// Without Replaces, a new store warns at once (another listener).
	opts.Replaces = nil
	if _, err := New(opts); err != nil {
		t.Fatal(err)
	}
	if got := logs.lines(warning); len(got) != 3 {
		t.Errorf("an unrelated store: %d warnings, want 3", len(got))
	}
}

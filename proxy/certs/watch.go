package certs

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"time"
)

// file is what a Store knows of a file it loaded: enough to notice a change
// (modification time and size, cheap to poll) and to tell a real change
// from a touch (the content's hash).
type file struct {
	path  string
	mtime time.Time
	size  int64
	sum   [sha256.Size]byte
	data  []byte // set by readFile; dropped once parsed
}

// readFile reads path and stamps it. The stamp is taken before the read,
// so a write racing the read shows as a change at the next poll.
func readFile(path string) (*file, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	return &file{path: path, mtime: info.ModTime(), size: info.Size(), sum: sha256.Sum256(b), data: b}, nil
}

// changed reports whether the file's modification time or size differs
// from the stamp, or it cannot be looked at any more.
func (f *file) changed() bool {
	info, err := os.Stat(f.path)
	return err != nil || !info.ModTime().Equal(f.mtime) || info.Size() != f.size
}

// Run polls the files every Options.Interval and reloads when one changed,
// and checks the certificates' expiry (logged once a day), until ctx is done. A Kubernetes secret or certbot renewal replaces files
// by rename; both show as a new modification time.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			_ = s.reloadLocked(false) // logged and counted there
			s.checkExpiry()           // a new day warns again
			s.mu.Unlock()
		}
	}
}

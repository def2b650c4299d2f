package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The configuration is watched by polling rather than with inotify (fsnotify):
// a stat of a few files every half second costs nothing, needs no dependency,
// works the same on every OS and file system (network and overlay mounts
// included), and sees a Kubernetes ConfigMap's symlink swap without having to
// re-arm watches on replaced directories.
const (
	// configPollInterval is how often the configuration's files are checked.
	configPollInterval = 500 * time.Millisecond
	// configSettle is how long the files must stay unchanged before a reload,
	// so that an editor's multi-step save (truncate, write, rename) is read once,
	// complete.
	configSettle = 200 * time.Millisecond
)

// startReloaders makes SIGHUP and changes of the configuration's files
// trigger reloads until ctx is done. Its goroutines are added to wg. The
// SIGHUP handler is installed before it returns.
func (a *app) startReloaders(ctx context.Context, wg *sync.WaitGroup) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = a.reload("SIGHUP")
			}
		}
	}()
	go func() {
		defer wg.Done()
		watchConfig(ctx, a.configPath, func() { _ = a.reload("file change") })
	}()
}

// watchConfig calls changed, until ctx is done, each time the configuration
// at path (a file or a directory) changed and then stayed unchanged for
// configSettle.
func watchConfig(ctx context.Context, path string, changed func()) {
	last := configFingerprint(path)
	timer := time.NewTimer(configPollInterval)
	defer timer.Stop()
	pending := "" // a changed fingerprint waiting to settle
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		fp := configFingerprint(path)
		switch {
		case pending != "" && fp == pending:
			last, pending = fp, ""
			changed()
			timer.Reset(configPollInterval)
		case fp != last:
			pending = fp
			timer.Reset(configSettle)
		default:
			pending = ""
			timer.Reset(configPollInterval)
		}
	}
}

// configFingerprint describes what the configuration at path is read from:
// for a file (and, in a directory, each *.hcl entry and each symbolic link,
// such as a ConfigMap's "..data") the link target if any and the size,
// modification time and inode of what it resolves to. Any change of it —
// an edit, a rename over the file, a swapped symlink — changes the string.
func configFingerprint(path string) string {
	var b strings.Builder
	info, err := os.Stat(path)
	if err != nil || !info.IsDir() {
		stamp(&b, path)
		return b.String()
	}
	// A directory's own size and time change with every file an editor
	// creates beside the configuration: only where it points matters.
	fmt.Fprintf(&b, "%s dir", path)
	if target, err := os.Readlink(path); err == nil {
		fmt.Fprintf(&b, " -> %s", target)
	}
	fmt.Fprintf(&b, " %d\n", inode(info))
	entries, err := os.ReadDir(path)
	if err != nil {
		fmt.Fprintf(&b, "readdir error %v\n", err)
		return b.String()
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".hcl") || e.Type()&os.ModeSymlink != 0 {
			stamp(&b, filepath.Join(path, e.Name()))
		}
	}
	return b.String()
}

// stamp writes one line describing name: its symlink target, then size,
// modification time, inode and mode of the file it resolves to.
func stamp(b *strings.Builder, name string) {
	fmt.Fprintf(b, "%s", name)
	if target, err := os.Readlink(name); err == nil {
		fmt.Fprintf(b, " -> %s", target)
	}
	info, err := os.Stat(name)
	if err != nil {
		fmt.Fprintf(b, " missing\n")
		return
	}
	fmt.Fprintf(b, " %d %d %d %v\n", info.Size(), info.ModTime().UnixNano(), inode(info), info.Mode())
}

package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ferry-proxy/ferry/config"
	"github.com/ferry-proxy/ferry/discovery"
)

// snapshotEvery bounds how often the snapshot file is written: at most once
// a second, however fast Consul changes.
const snapshotEvery = time.Second

// snapshotScope is the Consul a snapshot describes: the agent address the
// consul block or the environment gives, and the datacenter.
func snapshotScope(c config.Consul) discovery.SnapshotScope {
	addr := c.Address
	if addr == "" {
		addr = os.Getenv("CONSUL_HTTP_ADDR")
	}
	if addr == "" {
		addr = "127.0.0.1:8500"
	}
	return discovery.SnapshotScope{Address: addr, Datacenter: c.Datacenter}
}

// loadSnapshot reads the snapshot file, if one is configured and usable. A
// missing file is normal (first start); a corrupt or mismatched one is
// logged and ignored, never fatal.
func loadSnapshot(c config.Consul, logger hclog.Logger) map[string]*discovery.InstanceSet {
	if c.SnapshotFile == "" {
		return nil
	}
	sets, at, err := discovery.ReadSnapshot(c.SnapshotFile, snapshotScope(c))
	switch {
	case errors.Is(err, os.ErrNotExist):
		logger.Info("no snapshot file yet; it is written once Consul answers", "path", c.SnapshotFile)
		return nil
	case err != nil:
		logger.Warn("ignoring the snapshot file", "path", c.SnapshotFile, "error", err)
		return nil
	}
	logger.Info("read the last known instances from the snapshot file; serving them until Consul answers",
		"path", c.SnapshotFile, "services", len(sets), "written_at", at.Format(time.RFC3339))
	return sets
}

// snapshotWriter writes discovery's sets to the snapshot file after changes,
// at most once per snapshotEvery, and once more when it stops.
type snapshotWriter struct {
	a    *app
	log  hclog.Logger
	kick chan struct{} // capacity 1: the sets changed
}

func newSnapshotWriter(a *app) *snapshotWriter {
	return &snapshotWriter{a: a, log: a.logger.Named("snapshot"), kick: make(chan struct{}, 1)}
}

// changed asks for a write; it never blocks.
func (w *snapshotWriter) changed() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run writes until ctx is done, then writes a last time if anything is
// pending.
func (w *snapshotWriter) Run(ctx context.Context) {
	failing := false
	write := func() {
		c := w.a.liveConfig().Consul
		if c.SnapshotFile == "" {
			return
		}
		err := discovery.WriteSnapshot(c.SnapshotFile, snapshotScope(c), w.a.discovery.Sets())
		switch {
		case err != nil && !failing:
			w.log.Error("cannot write the snapshot file", "path", c.SnapshotFile, "error", err)
		case err == nil && failing:
			w.log.Info("snapshot file written again", "path", c.SnapshotFile)
		}
		failing = err != nil
	}
	timer := time.NewTimer(0)
	<-timer.C
	for {
		select {
		case <-ctx.Done():
			select {
			case <-w.kick:
				write()
			default:
			}
			return
		case <-w.kick:
		}
		write()
		timer.Reset(snapshotEvery) // the rate bound: changes meanwhile wait
		select {
		case <-ctx.Done():
			timer.Stop()
			select {
			case <-w.kick:
				write()
			default:
			}
			return
		case <-timer.C:
		}
	}
}

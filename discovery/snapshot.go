package discovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The snapshot file keeps the last known instance sets so that a ferry that
// starts while Consul does not answer can serve at once (consul.snapshot_file).
// It is JSON, written whole to a temporary file in the same directory, synced
// and renamed over the old one, so a reader sees the old or the new file,
// never a mix.

// snapshotVersion changes whenever the format does; a file of another
// version is ignored.
const snapshotVersion = 1

// SnapshotScope says which Consul a snapshot describes. A snapshot written
// for another scope (another agent address or datacenter) is ignored: its
// instances may not exist where ferry now looks.
type SnapshotScope struct {
	Address    string `json:"consul_address"`
	Datacenter string `json:"datacenter"`
}

type snapshotFile struct {
	Version   int                    `json:"version"`
	Scope     SnapshotScope          `json:"scope"`
	WrittenAt time.Time              `json:"written_at"`
	Services  map[string]snapshotSet `json:"services"`
}

type snapshotSet struct {
	Instances  []Instance `json:"instances"`
	All        []Instance `json:"all"`
	Datacenter string     `json:"datacenter"`
	FailedOver bool       `json:"failed_over"`
	Index      uint64     `json:"index"`
}

// ErrSnapshotMismatch is wrapped by ReadSnapshot for a well-formed snapshot
// that does not describe this ferry's Consul (scope or version).
var ErrSnapshotMismatch = errors.New("snapshot does not match")

// WriteSnapshot writes the known sets in sets to path atomically. Sets Consul
// never answered for (not Known) are left out.
func WriteSnapshot(path string, scope SnapshotScope, sets map[string]*InstanceSet) error {
	f := snapshotFile{Version: snapshotVersion, Scope: scope, WrittenAt: time.Now().UTC(),
		Services: make(map[string]snapshotSet, len(sets))}
	for name, s := range sets {
		if s == nil || !s.Known {
			continue
		}
		f.Services[name] = snapshotSet{Instances: s.Instances, All: s.All, Datacenter: s.Datacenter,
			FailedOver: s.FailedOver, Index: s.Index}
	}
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("discovery: snapshot: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("discovery: snapshot: %w", err)
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("discovery: snapshot: write %s: %w", path, werr)
	}
	return nil
}

// ReadSnapshot reads a snapshot written for scope. The sets it returns are
// Known, Stale and FromSnapshot, with Err set to ErrFromSnapshot. A file
// that is not a snapshot, is corrupt, or was written for another scope or
// format version is an error (ErrSnapshotMismatch for the last two).
func ReadSnapshot(path string, scope SnapshotScope) (map[string]*InstanceSet, time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("discovery: snapshot: %w", err)
	}
	var f snapshotFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, time.Time{}, fmt.Errorf("discovery: snapshot %s: corrupt: %w", path, err)
	}
	if f.Version != snapshotVersion {
		return nil, time.Time{}, fmt.Errorf("discovery: snapshot %s: format version %d, want %d: %w", path, f.Version, snapshotVersion, ErrSnapshotMismatch)
	}
	if f.Scope != scope {
		return nil, time.Time{}, fmt.Errorf("discovery: snapshot %s: written for Consul %q datacenter %q, not %q %q: %w",
			path, f.Scope.Address, f.Scope.Datacenter, scope.Address, scope.Datacenter, ErrSnapshotMismatch)
	}
	out := make(map[string]*InstanceSet, len(f.Services))
	for name, s := range f.Services {
		for _, in := range s.Instances {
			if in.Address == "" || in.Port <= 0 || in.Port > 65535 {
				return nil, time.Time{}, fmt.Errorf("discovery: snapshot %s: service %q: instance %q without a usable address", path, name, in.ID)
			}
		}
		out[name] = &InstanceSet{Service: name, Instances: s.Instances, All: s.All, Datacenter: s.Datacenter,
			FailedOver: s.FailedOver, Index: s.Index, Known: true, Stale: true, FromSnapshot: true, Err: ErrFromSnapshot}
	}
	return out, f.WrittenAt, nil
}

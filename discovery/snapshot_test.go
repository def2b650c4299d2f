package discovery

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSnapshotRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "instances.json")
	scope := SnapshotScope{Address: "127.0.0.1:8500", Datacenter: "dc1"}
	in := Instance{ID: "a", Node: "n1", Address: "10.0.0.1", Port: 80, Weight: 1, Status: StatusPassing, Datacenter: "dc1"}
	sets := map[string]*InstanceSet{
		"web":     {Service: "web", Known: true, Instances: []Instance{in}, All: []Instance{in}, Index: 7, Datacenter: "dc1"},
		"unknown": {Service: "unknown"},
	}
	if err := WriteSnapshot(path, scope, sets); err != nil {
		t.Fatal(err)
	}
	got, _, err := ReadSnapshot(path, scope)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d services, want only the known one", len(got))
	}
	w := got["web"]
	if !w.Known || !w.Stale || !w.FromSnapshot || !errors.Is(w.Err, ErrFromSnapshot) || w.Index != 7 ||
		!reflect.DeepEqual(w.Instances, []Instance{in}) || !reflect.DeepEqual(w.All, []Instance{in}) {
		t.Errorf("read back %+v", w)
	}
	// No temporary file is left behind.
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d files, want 1", len(entries))
	}

	if _, _, err := ReadSnapshot(path, SnapshotScope{Address: "10.0.0.9:8500", Datacenter: "dc1"}); !errors.Is(err, ErrSnapshotMismatch) {
		t.Errorf("another agent's snapshot: err %v, want ErrSnapshotMismatch", err)
	}
	for name, content := range map[string]string{
		"corrupt":     "{not json",
		"truncated":   `{"version":1,"scope":{"consul_address":"127.0.0.1:8500","datacenter":"dc1"},"services":{"web":{"instances":[{"ID":"a"`,
		"bad address": `{"version":1,"scope":{"consul_address":"127.0.0.1:8500","datacenter":"dc1"},"services":{"web":{"instances":[{"ID":"a","Port":0}]}}}`,
		"version":     `{"version":99,"scope":{"consul_address":"127.0.0.1:8500","datacenter":"dc1"}}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadSnapshot(path, scope); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err %v, want an error naming the file", name, err)
		}
	}
}

func TestCheckFingerprintDiff(t *testing.T) {
	m := New(Options{})
	m.watchers["web"] = &watcher{}
	m.watchers["api"] = &watcher{}
	m.watchers["db"] = &watcher{}
	dbSet := &InstanceSet{Service: "db", All: []Instance{{ID: "db-1", Node: "n2"}}}
	m.snap.Store(&map[string]*InstanceSet{"db": dbSet})
	d := newDetector(&scaler{m: m})
	base := []CheckState{
		{Node: "n1", CheckID: "c-web", ServiceID: "web-1", ServiceName: "web", Status: "passing"},
		{Node: "n1", CheckID: "c-api", ServiceID: "api-1", ServiceName: "api", Status: "passing"},
		{Node: "n2", CheckID: "serfHealth", Status: "passing"},
	}
	mod := func(f func([]CheckState) []CheckState) []CheckState {
		return f(append([]CheckState(nil), base...))
	}
	for _, tc := range []struct {
		name string
		cur  []CheckState
		want []string
	}{
		{"unchanged", base, nil},
		{"status", mod(func(c []CheckState) []CheckState { c[0].Status = "critical"; return c }), []string{"web"}},
		{"check removed", mod(func(c []CheckState) []CheckState { return c[1:] }), []string{"web"}},
		{"check added", mod(func(c []CheckState) []CheckState {
			return append(c, CheckState{Node: "n3", CheckID: "c-api-2", ServiceID: "api-2", ServiceName: "api", Status: "passing"})
		}), []string{"api"}},
		{"unwatched service", mod(func(c []CheckState) []CheckState {
			return append(c, CheckState{Node: "n3", CheckID: "x", ServiceID: "x-1", ServiceName: "other", Status: "critical"})
		}), nil},
		{"node check names the services on the node", mod(func(c []CheckState) []CheckState { c[2].Status = "critical"; return c }), []string{"db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := d.affected(fingerprint(base), fingerprint(tc.cur))
			if strings.Join(sortedCopy(got), ",") != strings.Join(tc.want, ",") {
				t.Errorf("affected = %v, want %v", got, tc.want)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

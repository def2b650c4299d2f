package config

import "testing"

// TestConsulNativeErrors covers the fields of SPEC §14: each error points
// at its value.
func TestConsulNativeErrors(t *testing.T) {
	for _, tc := range []errorCase{
		{name: "max_watch_connections too small", src: "consul {\n  max_watch_connections = 2\n}\n",
			want: []string{"t.hcl:2,27: Number out of range"}},
		{name: "snapshot_file a directory", src: "consul {\n  snapshot_file = \"/var/lib/ferry/\"\n}\n",
			want: []string{"t.hcl:2,19: Invalid snapshot_file"}},
		{name: "unknown health policy", src: "service \"a\" {\n  health = \"critical\"\n}\n",
			want: []string{"t.hcl:2,12: Unknown health policy"}, detail: `"passing"`},
		{name: "panic_threshold above 100", src: "service \"a\" {\n  panic_threshold = 101\n}\n",
			want: []string{"t.hcl:2,21: Number out of range"}},
		{name: "failover without datacenters", src: "service \"a\" {\n  failover {}\n}\n",
			want: []string{"t.hcl:2,3: Missing datacenters"}},
		{name: "failover datacenter twice", src: "service \"a\" {\n  failover {\n    datacenters = [\"dc2\", \"dc2\"]\n  }\n}\n",
			want: []string{"t.hcl:3,27: Invalid datacenter"}, detail: "listed twice"},
		{name: "two failover blocks", src: "service \"a\" {\n  failover {\n    datacenters = [\"dc2\"]\n  }\n  failover {\n    datacenters = [\"dc3\"]\n  }\n}\n",
			want: []string{"t.hcl:5,3: Duplicate failover block"}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc) })
	}
}

func TestConsulNativeValues(t *testing.T) {
	cfg := parse(t, "consul {\n  max_watch_connections = 8\n  snapshot_file = \"s.json\"\n}\n"+
		"service \"a\" {\n  health = \"warning\"\n  panic_threshold = 0\n  failover {\n    datacenters = [\"dc2\"]\n  }\n}\n"+
		"route \"r\" {\n  path_prefix = \"/\"\n  service = \"a\"\n}\n")
	if cfg.Consul.MaxWatchConnections != 8 || cfg.Consul.SnapshotFile != "s.json" || !cfg.Consul.SnapshotReady {
		t.Errorf("consul: got %+v", cfg.Consul)
	}
	a := cfg.Services["a"]
	if a.Health != HealthWarning || a.PanicThreshold != 0 || len(a.Failover) != 1 || a.Failover[0] != "dc2" {
		t.Errorf("service: got %+v", a)
	}
}

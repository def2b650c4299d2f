package main

import (
	"fmt"
	"testing"

	"github.com/ferry-proxy/ferry/config"
)

func TestConfigChanges(t *testing.T) {
	parse := func(src string) *config.Config {
		t.Helper()
		cfg, diags := config.Parse("t.hcl", []byte(src))
		if cfg == nil {
			t.Fatal(diags)
		}
		return cfg
	}
	cur := parse(`
route "a" {
  path_prefix = "/a"
  service     = "a"
}
route "b" {
  path_prefix = "/b"
  service     = "b"
}
`)
	next := parse(`
listen = "127.0.0.1:8081"
route "a" {
  path_prefix = "/a2"
  service     = "a"
}
route "c" {
  path_prefix = "/c"
  service     = "c"
}
service "a" {
  retries = 0
}
`)
	got := fmt.Sprint(configChanges(cur, next))
	want := "[routes_added [c] routes_removed [b] routes_changed [a] services_added [c] services_removed [b] services_changed [a] settings_changed [listen]]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := configChanges(cur, cur); len(got) != 0 {
		t.Errorf("same configuration: got %v, want nothing", got)
	}
}

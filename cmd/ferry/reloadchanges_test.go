package main

import (
	"fmt"
	"os"
	"reflect"
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

// TestConfigChangesCoverEveryField: a setting added to config.Config is
// named in a reload's change line, so an operator sees every change.
func TestConfigChangesCoverEveryField(t *testing.T) {
	compared := map[string]bool{"Routes": true, "Services": true, "Files": true} // routes_*, services_*; Files is not configuration
	for _, f := range settingFields {
		compared[f.field] = true
	}
	ct := reflect.TypeOf(config.Config{})
	for i := range ct.NumField() {
		if name := ct.Field(i).Name; !compared[name] {
			t.Errorf("config.Config.%s is not compared by configChanges: add it to settingFields", name)
		}
	}
	for _, f := range settingFields {
		if _, ok := ct.FieldByName(f.field); !ok {
			t.Errorf("settingFields names %s, which config.Config does not have", f.field)
		}
	}
}

// everyBlock uses every kind of block and filter that needs no file.
const everyBlock = `
listen = "127.0.0.1:8080"
trusted_proxies = ["10.0.0.0/8"]
limits {
  max_header_bytes = 32768
}
listener "inside" {
  address = "127.0.0.1:8081"
  http2   = true
}
redis {
  address = "127.0.0.1:6379"
}
service "api" {
  retries = 1
  health_check {
    path = "/health"
  }
  outlier {
    consecutive_failures = 3
  }
}
route "api" {
  path_prefix  = "/api"
  service      = "api"
  strip_prefix = true
  jwt {
    issuer    = "https://auth.example/"
    audiences = ["shop"]
    jwks_url  = "https://auth.example/jwks.json"
  }
  rate_limit {
    rate  = 10
    per   = "1s"
    burst = 5
    store = "redis"
  }
  headers {
    request_set = { "X-Env" = "prod" }
  }
  compress {
    min_bytes = 512
  }
  cache {
    max_bytes = 1048576
  }
}
route "web" {
  path_prefix = "/"
  header "X-Canary" {
    values = ["always"]
  }
  backend {
    service = "web"
    tag     = "v1"
    weight  = 90
  }
  backend {
    service = "web"
    tag     = "v2"
    weight  = 10
  }
}
local_service {
  name = "api"
  port = 9000
  check {
    tcp = "127.0.0.1:9000"
  }
}
`

// TestConfigChangesSameFilesNone: the same files parsed again (test
// configurations with every kind of block) change nothing, so a reload that
// only touches a file says changes=none.
func TestConfigChangesSameFilesNone(t *testing.T) {
	full, err := os.ReadFile("../../config/testdata/full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string][]byte{"full.hcl": full, "every-block.hcl": []byte(everyBlock)} {
		a, diags := config.Parse(name, src)
		if a == nil || diags.HasErrors() {
			t.Fatalf("%s: %v", name, diags)
		}
		b, _ := config.Parse(name, src)
		if got := configChanges(a, b); len(got) != 0 {
			t.Errorf("%s parsed twice: got %v, want no change", name, got)
		}
	}
	a, _ := config.Parse("full.hcl", full)
	b, _ := config.Parse("full.hcl", full)
	if got := configChanges(a, b); len(got) != 0 {
		t.Errorf("the same configuration parsed twice: got %v, want no change", got)
	}
	b.FastLane = !b.FastLane
	if got := fmt.Sprint(configChanges(a, b)); got != "[settings_changed [fast_lane]]" {
		t.Errorf("fast_lane flipped: got %s", got)
	}
}

package cache

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nginxCacheConf puts Debian's nginx with proxy_cache in front of an
// upstream, marking answers with $upstream_cache_status. Revalidation and
// the cache lock are on, as an nginx user who wants RFC-like behaviour
// configures them.
const nginxCacheConf = `daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  proxy_cache_path %[1]s/tmp/cache keys_zone=c:1m max_size=10m;
  server {
    listen %[2]s;
    location / {
      proxy_pass http://%[3]s;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_cache c;
      proxy_cache_revalidate on;
      proxy_cache_lock on;
      add_header X-Cache $upstream_cache_status always;
    }
  }
}
`

func startNginxCache(t *testing.T, upstream string) string {
	t.Helper()
	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the reference test needs Debian's nginx: %v", err)
	}
	// Not t.TempDir: its parent is private, and nginx's workers run as
	// nobody when the test runs as root.
	dir, err := os.MkdirTemp("", "ferry-nginx-cache-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o777)
	os.Chmod(filepath.Join(dir, "tmp"), 0o777)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxCacheConf, dir, addr, upstream)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-p", dir+"/", "-e", filepath.Join(dir, "nginx-error.log"), "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the workers go with the master
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "nginx-error.log"))
			t.Logf("nginx output: %s\nerror log: %s", out.String(), log)
		}
	})
	waitFor(t, "nginx listening", func() bool {
		select {
		case <-done:
			t.Fatalf("nginx exited: %s", out.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://" + addr
}

// TestAgainstNginx sends the same request sequences through nginx's
// proxy_cache and through the cache, and compares what each answered
// (status and X-Cache per request). Where they differ, the difference is
// deliberate and names its reason; docs/filters.md lists them.
func TestAgainstNginx(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		switch strings.Split(r.URL.Path, "/")[1] {
		case "maxage", "auth", "post", "host", "head":
			h.Set("Cache-Control", "max-age=60")
		case "smaxage":
			h.Set("Cache-Control", "s-maxage=60, max-age=0")
		case "nostore":
			h.Set("Cache-Control", "no-store, max-age=60")
		case "private":
			h.Set("Cache-Control", "private, max-age=60")
		case "cookie":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Set-Cookie", "s=1")
		case "noinfo":
		case "vary":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "Accept-Language")
		case "varystar":
			h.Set("Cache-Control", "max-age=60")
			h.Set("Vary", "*")
		case "etag":
			h.Set("Cache-Control", "max-age=60")
			h.Set("ETag", `"e1"`)
			if r.Header.Get("If-None-Match") == `"e1"` {
				w.WriteHeader(304)
				return
			}
		case "nocache":
			h.Set("Cache-Control", "no-cache")
			h.Set("ETag", `"n1"`)
			if r.Header.Get("If-None-Match") == `"n1"` {
				w.WriteHeader(304)
				return
			}
		}
		fmt.Fprintf(w, "%s %s", r.URL.Path, r.Header.Get("Accept-Language"))
	}))
	defer up.Close()
	nginx := startNginxCache(t, strings.TrimPrefix(up.URL, "http://"))
	f, err := New(testConfig(), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ferry := frontFor(t, f, up.URL).URL
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	type req struct {
		method, path string
		header       []string
	}
	get := func(path string, header ...string) req { return req{"GET", path, header} }
	for _, tc := range []struct {
		name       string
		reqs       []req
		nginx      string // status/X-Cache per request
		ferry      string // "" = as nginx
		deliberate string
	}{
		{name: "max-age", reqs: []req{get("/maxage/1"), get("/maxage/1")}, nginx: "200 MISS, 200 HIT"},
		{name: "s-maxage over max-age", reqs: []req{get("/smaxage/1"), get("/smaxage/1")}, nginx: "200 MISS, 200 HIT"},
		{name: "no-store", reqs: []req{get("/nostore/1"), get("/nostore/1")}, nginx: "200 MISS, 200 MISS"},
		{name: "private", reqs: []req{get("/private/1"), get("/private/1")}, nginx: "200 MISS, 200 MISS"},
		{name: "Set-Cookie", reqs: []req{get("/cookie/1"), get("/cookie/1")}, nginx: "200 MISS, 200 MISS"},
		{name: "no freshness", reqs: []req{get("/noinfo/1"), get("/noinfo/1")}, nginx: "200 MISS, 200 MISS"},
		{name: "Vary: *", reqs: []req{get("/varystar/1"), get("/varystar/1")}, nginx: "200 MISS, 200 MISS"},
		{name: "conditional on a hit", reqs: []req{get("/etag/1"), get("/etag/1", "If-None-Match", `"e1"`)}, nginx: "200 MISS, 304 HIT"},
		{name: "Vary variants", reqs: []req{get("/vary/1", "Accept-Language", "en"), get("/vary/1", "Accept-Language", "fr"), get("/vary/1", "Accept-Language", "en")},
			nginx: "200 MISS, 200 MISS, 200 HIT"},
		{name: "Authorization", reqs: []req{get("/auth/1", "Authorization", "Bearer x"), get("/auth/1")},
			nginx: "200 MISS, 200 HIT", ferry: "200 MISS, 200 MISS",
			deliberate: "RFC 9111 §3.5: no storing for a request with Authorization without public/s-maxage/must-revalidate"},
		{name: "unsafe method invalidates", reqs: []req{get("/post/1"), {"POST", "/post/1", nil}, get("/post/1")},
			nginx: "200 MISS, 200 , 200 HIT", ferry: "200 MISS, 200 BYPASS, 200 MISS",
			deliberate: "RFC 9111 §4.4: a successful unsafe request invalidates the URI"},
		{name: "Host in the key", reqs: []req{get("/host/1", "Host", "a.test"), get("/host/1", "Host", "b.test")},
			nginx: "200 MISS, 200 HIT", ferry: "200 MISS, 200 MISS",
			deliberate: "nginx's default key ($scheme$proxy_host$request_uri) leaves out the client's Host; ferry keys on it"},
		{name: "HEAD", reqs: []req{{"HEAD", "/head/1", nil}, get("/head/1"), {"HEAD", "/head/1", nil}},
			nginx: "200 MISS, 200 HIT, 200 HIT", ferry: "200 BYPASS, 200 MISS, 200 HIT",
			deliberate: "nginx turns a HEAD miss into a GET upstream (proxy_cache_convert_head); ferry forwards HEAD as HEAD and stores nothing"},
		{name: "no-cache", reqs: []req{get("/nocache/1"), get("/nocache/1")},
			nginx: "200 MISS, 200 MISS", ferry: "200 MISS, 200 REVALIDATED",
			deliberate: "nginx never stores no-cache; RFC 9111 §5.2.2.4 stores it and revalidates before each use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(base string) string {
				var got []string
				for _, r := range tc.reqs {
					res := doOn(t, client, base, r.method, r.path, r.header...)
					if res.err != nil {
						t.Fatal(res.err)
					}
					got = append(got, fmt.Sprintf("%d %s", res.status, res.header.Get("X-Cache")))
				}
				return strings.Join(got, ", ")
			}
			n, fy := run(nginx), run(ferry)
			want := tc.ferry
			if want == "" {
				want = tc.nginx
			}
			if n != tc.nginx {
				t.Errorf("nginx: got %q, want %q (the reference changed: revisit this case)", n, tc.nginx)
			}
			if fy != want {
				t.Errorf("ferry: got %q, want %q", fy, want)
			}
			if tc.deliberate != "" {
				t.Logf("deliberate difference: %s", tc.deliberate)
			}
		})
	}
}

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// nginxConf is the reference proxy of the differential test, configured as
// `make bench` configures it (bench/cmd/ferrybench/targets.go): an upstream
// keep-alive pool of 64, HTTP/1.1 upstream, the Connection header cleared.
// Two differences, both so that the comparison is about parsing and
// forwarding rather than configuration: one worker (the tests compare
// single connections, not throughput), and Host forwarded as the client's
// ($host: the request line's host for an absolute-form target, else the
// Host field) instead of the upstream block's name. Client timeouts are
// short so that a request nginx waits on ends the case quickly.
const nginxConf = `daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  client_header_timeout 2s;
  client_body_timeout 2s;
  upstream requests {
    server %[3]s;
    keepalive 64;
  }
  upstream responses {
    server %[4]s;
    keepalive 64;
  }
  server {
    listen %[5]s;
    location / {
      proxy_pass http://requests;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
    location /rf/ {
      proxy_pass http://responses;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`

// startNginx runs Debian's nginx in front of the two backends until the
// test ends, and returns its address.
func startNginx(t *testing.T, requests, responses string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatal("nginx not found: the differential test needs Debian's nginx (apt-get install nginx)")
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tmp, 0o777) // workers run as nobody when the test runs as root
	listen := "127.0.0.1:" + strconv.Itoa(consultest.FreePorts(t, 1)[0])
	conf := filepath.Join(dir, "nginx.conf")
	writeFile(t, conf, fmt.Sprintf(nginxConf, dir, tmp, requests, responses, listen))
	var out bytes.Buffer
	cmd := exec.Command(bin, "-p", dir+"/", "-e", filepath.Join(dir, "nginx-error.log"), "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that the workers go with the master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
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
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			t.Logf("nginx output:\n%s\nnginx error log (tail):\n%s", out.String(), log)
		}
	})
	waitFor(t, 10*time.Second, "nginx listening", func() bool {
		select {
		case <-done:
			t.Fatalf("nginx exited: %s", out.String())
		default:
		}
		cl, err := dialRaw(listen)
		if err != nil {
			return false
		}
		cl.Close()
		return true
	})
	return listen
}

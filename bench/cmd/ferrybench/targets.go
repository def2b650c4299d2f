package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/bench/internal/benchkit"
)

// target is one thing the benchmark sends load to.
type target struct {
	name string
	url  string         // base URL, no trailing slash
	proc *benchkit.Proc // whose CPU and memory are measured
	// scenarios, when set, are the only scenarios (keys) this target is
	// measured in: a second route of ferry or nginx added for one scenario.
	scenarios string
	// tlsURL is the https base URL of its TLS listener (scenarios_tls.go),
	// "" when it has none.
	tlsURL string
}

// lab is every process the benchmark started. stop ends them by PID.
type lab struct {
	dir      string
	procs    []*benchkit.Proc
	consul   *benchkit.Consul
	backends [2]string // host:port
	targets  []*target
	ferry    *target
	ferryAdm string     // admin host:port
	filters  *filterLab // the filter scenarios' backends, routes and notes (scenarios_filters.go)
}

func (l *lab) stop() {
	for i := len(l.procs) - 1; i >= 0; i-- {
		l.procs[i].Stop()
	}
}

func (l *lab) start(name, bin string, env []string, args ...string) (*benchkit.Proc, error) {
	p, err := benchkit.Start(l.dir, name, bin, env, args...)
	if err != nil {
		return nil, err
	}
	l.procs = append(l.procs, p)
	return p, nil
}

// startLab is setup for a run: on failure it stops what setup started and
// says where its logs are kept.
func startLab(ctx context.Context, o options, want map[string]bool) (*lab, error) {
	l, err := setup(ctx, o, want)
	if err == nil {
		return l, nil
	}
	if l != nil {
		l.stop()
		return nil, fmt.Errorf("%w (logs kept in %s)", err, l.dir)
	}
	return nil, err
}

// setup starts Consul, two backends registered in it as service "bench", and
// whichever of ferry, nginx and HAProxy want lists, each on its own free
// loopback port with its config in l.dir.
func setup(ctx context.Context, o options, want map[string]bool) (*lab, error) {
	root := o.root
	dir, err := os.MkdirTemp("", "ferrybench-")
	if err != nil {
		return nil, err
	}
	l := &lab{dir: dir}
	ports, err := benchkit.FreePorts(6)
	if err != nil {
		return l, err
	}
	consulBin, err := benchkit.ConsulBinary(root)
	if err != nil {
		return l, err
	}
	fmt.Fprintf(os.Stderr, "ferrybench: starting Consul, backends and proxies (work dir %s)\n", dir)
	if l.consul, err = benchkit.StartConsul(ctx, dir, consulBin); err != nil {
		return l, err
	}
	l.procs = append(l.procs, l.consul.Proc)

	cfg := api.DefaultConfig()
	cfg.Address = l.consul.HTTPAddr
	client, err := api.NewClient(cfg)
	if err != nil {
		return l, err
	}
	for i := range 2 {
		addr := "127.0.0.1:" + strconv.Itoa(ports[i])
		l.backends[i] = addr
		p, err := l.start("backend-"+strconv.Itoa(i+1), filepath.Join(root, "bin/demo-backend"),
			[]string{"GOMAXPROCS=2"}, "-addr", addr, "-name", "b"+strconv.Itoa(i+1), "-size", "64")
		if err != nil {
			return l, err
		}
		if err := benchkit.WaitHTTP(ctx, "http://"+addr+"/health", 200, 10*time.Second, p); err != nil {
			return l, err
		}
		// No Consul check: the instance is passing as long as the node is.
		if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "bench-" + strconv.Itoa(i+1), Name: "bench", Address: "127.0.0.1", Port: ports[i],
		}); err != nil {
			return l, fmt.Errorf("register backend: %w", err)
		}
		if i == 0 {
			l.targets = append(l.targets, &target{name: "direct", url: "http://" + addr, proc: p})
		}
	}
	if err := l.startFilterBackends(ctx, o, client); err != nil {
		return l, err
	}

	if want["ferry"] {
		t, admin, err := l.startFerry(ctx, o, "ferry", o.ferryBin, ports[2], ports[3])
		if err != nil {
			return l, err
		}
		l.ferry, l.ferryAdm = t, admin
		l.targets = append(l.targets, t)
	}
	if o.ferryB != "" {
		more, err := benchkit.FreePorts(2)
		if err != nil {
			return l, err
		}
		t, _, err := l.startFerry(ctx, o, o.ferryBName, o.ferryB, more[0], more[1])
		if err != nil {
			return l, err
		}
		l.targets = append(l.targets, t)
	}
	if want["nginx"] {
		listen := "127.0.0.1:" + strconv.Itoa(ports[4])
		tmp := filepath.Join(dir, "nginx-tmp")
		if err := os.MkdirAll(tmp, 0o777); err != nil {
			return l, err
		}
		os.Chmod(tmp, 0o777) // workers run as nobody
		httpExtra, serverExtra, err := l.nginxFilterConf()
		if err != nil {
			return l, err
		}
		conf := fmt.Sprintf(nginxConf, max(o.fileLimit, 4096), dir, dir, maxConns(o), tmp, tmp, httpExtra, l.backends[0], l.backends[1], listen, serverExtra)
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return l, err
		}
		p, err := l.start("nginx", "nginx", nil, "-p", dir+"/", "-e", filepath.Join(dir, "nginx-error.log"), "-c", path)
		if err != nil {
			return l, err
		}
		if err := benchkit.WaitHTTP(ctx, "http://"+listen+"/", 200, 10*time.Second, p); err != nil {
			return l, err
		}
		l.targets = append(l.targets, &target{name: "nginx", url: "http://" + listen, proc: p})
	}
	if want["haproxy"] {
		listen := "127.0.0.1:" + strconv.Itoa(ports[5])
		conf := fmt.Sprintf(haproxyConf, maxConns(o), max(o.fileLimit, 4096), filepath.Join(dir, "haproxy.pid"), maxConns(o), listen, l.backends[0], l.backends[1])
		path := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return l, err
		}
		p, err := l.start("haproxy", "haproxy", nil, "-db", "-f", path)
		if err != nil {
			return l, err
		}
		if err := benchkit.WaitHTTP(ctx, "http://"+listen+"/", 200, 10*time.Second, p); err != nil {
			return l, err
		}
		l.targets = append(l.targets, &target{name: "haproxy", url: "http://" + listen, proc: p})
	}
	// Every proxy must reach both backends before measuring.
	for _, t := range l.targets {
		for range 4 {
			resp, err := http.Get(t.url + "/warm")
			if err != nil {
				return l, fmt.Errorf("%s: %w", t.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return l, fmt.Errorf("%s: warm-up answered %d", t.name, resp.StatusCode)
			}
		}
	}
	l.addFilterTargets()
	if err := l.prepareFilters(ctx); err != nil {
		return l, err
	}
	return l, nil
}

// startFerry starts a ferry binary named name with ferryConf on the given
// ports and waits until it is ready.
func (l *lab) startFerry(ctx context.Context, o options, name, bin string, listenPort, adminPort int) (*target, string, error) {
	listen, admin := "127.0.0.1:"+strconv.Itoa(listenPort), "127.0.0.1:"+strconv.Itoa(adminPort)
	pprof := ""
	if o.profile != "" {
		pprof = "pprof  = true\n"
	}
	conf := fmt.Sprintf(ferryConf, listen, admin, pprof, l.consul.HTTPAddr, maxConns(o), l.ferryFilterRoutes())
	path := filepath.Join(l.dir, name+".hcl")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := l.start(name, bin, []string{"GOMAXPROCS=2"}, "run", "-config", path)
	if err != nil {
		return nil, "", err
	}
	if err := benchkit.WaitHTTP(ctx, "http://"+admin+"/readyz", 200, 20*time.Second, p); err != nil {
		return nil, "", err
	}
	return &target{name: name, url: "http://" + listen, proc: p}, admin, nil
}

// maxConns is each proxy's cap on client connections: nginx's
// worker_connections (per worker, upstream connections included), HAProxy's
// maxconn and ferry's max_connections. 4096 as BENCH-ANCHORS.md has it,
// unless scenario (j) runs: then room for its connections (nginx then
// allocates its larger connection tables at start, which its RSS in the
// other scenarios shows).
func maxConns(o options) int {
	if strings.Contains(o.only, "j") {
		return o.idleConns + o.idleConns/2 + 1024
	}
	return 4096
}

// ferryConf: one catch-all route to the two backends; access log off; pprof
// on the admin listener for make profile only.
const ferryConf = `listen = %q
admin  = %q
%s
consul {
  address = %q
}

log {
  level      = "warn"
  access_log = "off"
}

limits {
  max_connections = %d
}

route "bench" {
  path_prefix = "/"
  service     = "bench"
}
%s`

// nginxConf follows BENCH-ANCHORS.md: 2 workers, an upstream keep-alive pool
// of 64, HTTP/1.1 upstream with the Connection header cleared, access log off.
const nginxConf = `daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile %d;
pid %s/nginx.pid;
error_log %s/nginx-error.log warn;
events { worker_connections %d; }
http {
  access_log off;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
%s
  upstream backends {
    server %s;
    server %s;
    keepalive 64;
  }
  server {
    listen %s;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
%s
  }
}
`

// haproxyConf follows BENCH-ANCHORS.md: nbthread 2, http-reuse always (server
// keep-alive is HAProxy's default), no log lines. ulimit-n is the driver's
// limit: HAProxy would otherwise try to raise it to twice maxconn and stop
// when it cannot; with no strict-limits it warns instead (a client
// connection and its server connection do not both live long here).
const haproxyConf = `global
  nbthread 2
  maxconn %d
  ulimit-n %d
  no strict-limits
  pidfile %s

defaults
  mode http
  maxconn %d
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always

frontend fe
  bind %s
  default_backend be

backend be
  balance roundrobin
  server b1 %s
  server b2 %s
`

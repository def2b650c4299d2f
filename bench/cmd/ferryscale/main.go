// Command ferryscale is ferry's discovery-at-scale benchmark (make
// bench-scale): it registers many services with several instances each in a
// real Consul dev agent (with its default limits unless told otherwise),
// starts ferry with a route to each, and reports the time to ready, ferry's
// idle CPU and memory, the requests per second the agent serves idle and
// under churn, any 429 answer ferry got, and how long a change in Consul
// takes to reach routing under steady churn, detected by requests through
// ferry.
//
// Everything runs on loopback; every process it starts is stopped by PID.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/bench/internal/benchkit"
)

type options struct {
	root      string
	ferryBin  string
	services  int
	instances int
	rate      int
	churn     time.Duration
	idle      time.Duration
	workers   int
	maxConns  int
	maxWatch  int
	change    string
	heap      string
	cpu       string
	agent     string
}

func main() {
	var o options
	flag.StringVar(&o.root, "root", ".", "the ferry checkout (bin/ferry, bin/consul)")
	flag.StringVar(&o.ferryBin, "ferry", "", "the ferry binary (default ROOT/bin/ferry)")
	flag.IntVar(&o.services, "services", 1000, "services to register and route")
	flag.IntVar(&o.instances, "instances", 3, "instances per service")
	flag.IntVar(&o.rate, "rate", 20, "Consul changes per second during churn")
	flag.DurationVar(&o.churn, "churn", 20*time.Second, "how long to churn")
	flag.DurationVar(&o.idle, "idle", 40*time.Second, "how long to measure idle CPU and agent requests (longer than consul.wait_time)")
	flag.IntVar(&o.workers, "workers", 32, "parallel catalog registrations")
	flag.IntVar(&o.maxConns, "consul-max-conns", 0, "the agent's limits.http_max_conns_per_client "+
		"(0: Consul's default, 200; -1: 2×services+200, room for one blocking query per service)")
	flag.IntVar(&o.maxWatch, "max-watch", 0, "ferry's consul.max_watch_connections (0: ferry's default, 64; "+
		"above the number of services, one blocking query per service: the per-service baseline)")
	flag.StringVar(&o.change, "change", "replace", "what a churn change is: replace (a new instance with its check "+
		"registered, the old one deregistered: a deploy) or inplace (the instance re-registered on another port, "+
		"checks unchanged)")
	flag.StringVar(&o.heap, "heap", "", "write ferry's heap profile after the idle period here (enables pprof)")
	flag.StringVar(&o.agent, "consul-mode", "dev", "how the agent runs: dev (consul agent -dev) or server (a single "+
		"server as in production, with a data directory: no dev mode, which indents every JSON answer)")
	flag.StringVar(&o.cpu, "cpu", "", "write ferry's CPU profile over the churn period here (enables pprof)")
	flag.Parse()
	if o.maxConns < 0 {
		o.maxConns = 2*o.services + 200
	}
	if o.ferryBin == "" {
		o.ferryBin = filepath.Join(o.root, "bin/ferry")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "ferryscale:", err)
		os.Exit(1)
	}
}

// backends are in-process listeners that answer with their own index, so a
// request through ferry tells which instance it reached. Instances 0..n-1 of
// every service use backends 0..n-1; a churn change moves one instance of a
// service to the last backend.
func startBackends(n int) ([]int, func(), error) {
	var (
		ports []int
		srvs  []*http.Server
	)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		body := []byte("b" + strconv.Itoa(i))
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }),
			ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(l)
		srvs = append(srvs, srv)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, func() {
		for _, s := range srvs {
			s.Close()
		}
	}, nil
}

func svcName(i int) string { return "svc-" + strconv.Itoa(i) }

// nodeOf spreads instances over 8 nodes.
func nodeOf(id string) string { return "scale-node-" + strconv.Itoa(len(id)%8) }

// register registers an instance with a passing check, as an agent does for
// a service with a check.
func register(c *api.Client, svc, id string, port int) error {
	node := nodeOf(id)
	_, err := c.Catalog().Register(&api.CatalogRegistration{
		Node: node, Address: "127.0.0.1", SkipNodeUpdate: true,
		Service: &api.AgentService{ID: id, Service: svc, Address: "127.0.0.1", Port: port},
		Check:   &api.AgentCheck{Node: node, CheckID: "service:" + id, Name: "alive", Status: api.HealthPassing, ServiceID: id},
	}, nil)
	return err
}

func deregister(c *api.Client, id string) error {
	_, err := c.Catalog().Deregister(&api.CatalogDeregistration{Node: nodeOf(id), ServiceID: id}, nil)
	return err
}

// agentGETs is the number of HTTP GETs the agent has served so far (its
// consul_api_http_count in Prometheus format, the metrics scrapes left out).
func agentGETs(addr string) (uint64, error) {
	resp, err := http.Get("http://" + addr + "/v1/agent/metrics?format=prometheus")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "consul_api_http_count{") || !strings.Contains(line, `method="GET"`) ||
			strings.Contains(line, "v1_agent_metrics") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("agent metrics: %q: %w", line, err)
		}
		n += uint64(v)
	}
	return n, nil
}

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "ferryscale-")
	if err != nil {
		return err
	}
	var procs []*benchkit.Proc
	keep := true
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].Stop()
		}
		if keep {
			fmt.Fprintln(os.Stderr, "ferryscale: logs kept in", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	consulBin, err := benchkit.ConsulBinary(o.root)
	if err != nil {
		return err
	}
	// Prometheus retention makes the agent keep cumulative request counts.
	extra := []string{"-hcl", `telemetry { prometheus_retention_time = "10m" disable_hostname = true }`}
	if o.maxConns > 0 {
		extra = append(extra, "-hcl", fmt.Sprintf("limits { http_max_conns_per_client = %d }", o.maxConns))
	}
	var consul *benchkit.Consul
	switch o.agent {
	case "dev":
		consul, err = benchkit.StartConsul(ctx, dir, consulBin, extra...)
	case "server":
		consul, err = startServer(ctx, dir, consulBin, extra...)
	default:
		err = fmt.Errorf("-consul-mode %q: want dev or server", o.agent)
	}
	if err != nil {
		return err
	}
	procs = append(procs, consul.Proc)
	cfg := api.DefaultConfig()
	cfg.Address = consul.HTTPAddr
	cfg.Transport.MaxIdleConnsPerHost = o.workers
	client, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	bports, stopBackends, err := startBackends(o.instances + 1)
	if err != nil {
		return err
	}
	defer stopBackends()

	// Register services × instances, o.workers at a time.
	t0 := time.Now()
	jobs := make(chan [2]int)
	errs := make(chan error, o.workers)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for j := range jobs {
				svc := svcName(j[0])
				if err := register(client, svc, svc+"-"+strconv.Itoa(j[1]), bports[j[1]]); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for s := range o.services {
		for i := range o.instances {
			jobs <- [2]int{s, i}
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("catalog register: %w", err)
	default:
	}
	regTime := time.Since(t0)

	// ferry with one route per service.
	ports, err := benchkit.FreePorts(2)
	if err != nil {
		return err
	}
	listen, admin := "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	var conf strings.Builder
	watchLine := ""
	if o.maxWatch > 0 {
		watchLine = fmt.Sprintf("  max_watch_connections = %d\n", o.maxWatch)
	}
	fmt.Fprintf(&conf, "listen = %q\nadmin = %q\nconsul {\n  address = %q\n%s}\nlog {\n  level = \"warn\"\n  access_log = \"off\"\n}\n",
		listen, admin, consul.HTTPAddr, watchLine)
	if o.heap != "" || o.cpu != "" {
		conf.WriteString("pprof = true\n")
	}
	for s := range o.services {
		fmt.Fprintf(&conf, "route %q {\n  path_prefix = \"/%s\"\n  service = %q\n}\n", svcName(s), svcName(s), svcName(s))
	}
	confPath := filepath.Join(dir, "ferry.hcl")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	t1 := time.Now()
	ferry, err := benchkit.Start(dir, "ferry", o.ferryBin, []string{"GOMAXPROCS=2"}, "run", "-config", confPath)
	if err != nil {
		return err
	}
	procs = append(procs, ferry)
	if err := benchkit.WaitHTTP(ctx, "http://"+admin+"/readyz", 200, 60*time.Second, ferry); err != nil {
		return err
	}
	ready := time.Since(t1)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, s := range []int{0, o.services - 1} {
		if body, err := get(hc, "http://"+listen+"/"+svcName(s)+"/x"); err != nil || !strings.HasPrefix(body, "b") {
			return fmt.Errorf("routing %s after ready: %q, %v", svcName(s), body, err)
		}
	}

	// Idle: no traffic, no changes. The period must be longer than
	// consul.wait_time (30 s), when every idle blocking query comes back.
	time.Sleep(2 * time.Second)
	get0, err := agentGETs(consul.HTTPAddr)
	if err != nil {
		return err
	}
	cpu0, w0 := benchkit.CPU(ferry.PID()), time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.idle):
	}
	idleCPU := float64(benchkit.CPU(ferry.PID())-cpu0) / float64(time.Since(w0))
	idleRSS := benchkit.RSS(ferry.PID())
	get1, err := agentGETs(consul.HTTPAddr)
	if err != nil {
		return err
	}
	idleReqs := float64(get1-get0) / time.Since(w0).Seconds()
	if o.heap != "" {
		if err := saveHeap(hc, "http://"+admin+"/debug/pprof/heap", o.heap); err != nil {
			return err
		}
	}

	// Churn: o.rate changes a second, each moving instance 0 of a service not
	// changed before to the spare backend; a poller per change sends requests
	// through ferry until one reaches the spare backend.
	spare := "b" + strconv.Itoa(o.instances)
	n := min(int(o.churn.Seconds()*float64(o.rate)), o.services)
	lat := make([]time.Duration, n)
	var pollers sync.WaitGroup
	get2, err := agentGETs(consul.HTTPAddr)
	if err != nil {
		return err
	}
	cpu1, w1 := benchkit.CPU(ferry.PID()), time.Now()
	profiled := make(chan error, 1)
	if o.cpu != "" {
		pc := &http.Client{Timeout: o.churn + 30*time.Second}
		go func() {
			profiled <- saveHeap(pc, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, int(o.churn.Seconds())), o.cpu)
		}()
	} else {
		profiled <- nil
	}
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	for k := range n {
		select {
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		case <-tick.C:
		}
		svc := svcName(k)
		var err error
		if o.change == "inplace" {
			err = register(client, svc, svc+"-0", bports[o.instances])
		} else {
			err = register(client, svc, svc+"-new", bports[o.instances])
		}
		if err != nil {
			tick.Stop()
			return fmt.Errorf("churn: %w", err)
		}
		changed := time.Now() // Consul has committed the change
		if o.change != "inplace" {
			if err := deregister(client, svc+"-0"); err != nil {
				tick.Stop()
				return fmt.Errorf("churn: %w", err)
			}
		}
		pollers.Go(func() {
			lat[k] = -1
			url := "http://" + listen + "/" + svc + "/x"
			for time.Since(changed) < 10*time.Second {
				for range o.instances { // round robin: one of these reaches each instance
					if body, err := get(hc, url); err == nil && body == spare {
						lat[k] = time.Since(changed)
						return
					}
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	tick.Stop()
	pollers.Wait()
	if err := <-profiled; err != nil {
		return err
	}
	churnCPU := float64(benchkit.CPU(ferry.PID())-cpu1) / float64(time.Since(w1))
	peak := benchkit.PeakRSS(ferry.PID())
	get3, err := agentGETs(consul.HTTPAddr)
	if err != nil {
		return err
	}
	churnReqs := float64(get3-get2) / time.Since(w1).Seconds()
	ferryLog, _ := os.ReadFile(filepath.Join(dir, "ferry.log"))
	// As the api client reports the agent's refusal; a bare "429" would
	// also count timestamps (….429Z).
	tooMany := strings.Count(string(ferryLog), "code: 429")

	var ok []time.Duration
	for _, l := range lat {
		if l >= 0 {
			ok = append(ok, l)
		}
	}
	slices.Sort(ok)
	q := func(f float64) float64 {
		if len(ok) == 0 {
			return 0
		}
		return float64(ok[min(len(ok)-1, max(0, int(f*float64(len(ok))+0.5)-1))]) / float64(time.Millisecond)
	}
	fmt.Printf("# ferryscale\n\n")
	fmt.Printf("command: %s\n\n", strings.Join(os.Args, " "))
	fmt.Printf("| figure | value |\n|---|---:|\n")
	fmt.Printf("| services × instances registered | %d × %d |\n", o.services, o.instances)
	fmt.Printf("| Consul agent | %s |\n", map[string]string{"dev": "consul agent -dev", "server": "single server, not dev mode"}[o.agent])
	limit := "200 (Consul's default)"
	if o.maxConns > 0 {
		limit = strconv.Itoa(o.maxConns)
	}
	watch := "64 (ferry's default)"
	if o.maxWatch > 0 {
		watch = strconv.Itoa(o.maxWatch)
	}
	fmt.Printf("| Consul limits.http_max_conns_per_client | %s |\n", limit)
	fmt.Printf("| ferry consul.max_watch_connections | %s |\n", watch)
	fmt.Printf("| catalog registration (%d parallel PUTs) | %.2f s |\n", o.workers, regTime.Seconds())
	fmt.Printf("| ferry start to /readyz 200 | %.2f s |\n", ready.Seconds())
	fmt.Printf("| idle CPU over %s (%% of one core) | %.2f %% |\n", o.idle, idleCPU*100)
	fmt.Printf("| idle RSS | %.1f MiB |\n", float64(idleRSS)/1024)
	fmt.Printf("| agent GET requests/s, idle (over %s) | %.2f |\n", o.idle, idleReqs)
	fmt.Printf("| changes applied (%s, %d/s for %s) | %d, %d seen in routing |\n", o.change, o.rate, o.churn, n, len(ok))
	fmt.Printf("| change → routing p50 | %.1f ms |\n", q(0.50))
	fmt.Printf("| change → routing p99 | %.1f ms |\n", q(0.99))
	fmt.Printf("| change → routing max | %.1f ms |\n", q(1))
	fmt.Printf("| CPU during churn and probing (%% of one core) | %.1f %% |\n", churnCPU*100)
	fmt.Printf("| agent GET requests/s, churn (the bench's own writes are PUTs, not counted) | %.1f |\n", churnReqs)
	fmt.Printf("| lines with 429 in ferry's log | %d |\n", tooMany)
	fmt.Printf("| peak RSS (VmHWM) | %.1f MiB |\n", float64(peak)/1024)
	keep = false
	return nil
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// saveHeap saves a profile (heap or CPU) from ferry's pprof endpoint.
func saveHeap(c *http.Client, url, path string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startServer starts a single Consul server as production runs one (a data
// directory, no -dev) and waits until it has elected itself. Dev mode is not
// representative of what the change detector costs the agent: it indents
// every JSON answer, which in the dev runs was over 40% of the agent's CPU
// under churn, most of it on the cluster's check list.
func startServer(ctx context.Context, dir, bin string, extra ...string) (*benchkit.Consul, error) {
	ports, err := benchkit.FreePorts(4)
	if err != nil {
		return nil, err
	}
	args := append([]string{"agent", "-server", "-bootstrap-expect", "1", "-node", "ferryscale",
		"-data-dir", filepath.Join(dir, "consul-data"),
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]),
		"-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]),
		"-server-port", strconv.Itoa(ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-log-level", "warn",
		// Consul's recommended production timing (the default, 5, is
		// for small machines): a quick election.
		"-hcl", "performance { raft_multiplier = 1 }"}, extra...)
	p, err := benchkit.Start(dir, "consul", bin, nil, args...)
	if err != nil {
		return nil, err
	}
	c := &benchkit.Consul{Proc: p, HTTPAddr: "127.0.0.1:" + strconv.Itoa(ports[0])}
	if err := benchkit.WaitHTTP(ctx, "http://"+c.HTTPAddr+"/v1/status/leader", 200, 30*time.Second, p); err != nil {
		p.Stop()
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if body, err := get(http.DefaultClient, "http://"+c.HTTPAddr+"/v1/status/leader"); err == nil && len(body) > 4 {
			return c, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Stop()
	return nil, fmt.Errorf("consul server: no leader after 30s")
}

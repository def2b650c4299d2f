package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// TestFaultMatrix is the failure-path matrix: every upstream fault of
// faults_cases_test.go × method (GET, HEAD, POST with a body; POST with a
// chunked body where the retry policy is the point) × upstream connection
// (new, or reused: warmed by earlier requests) × front-end (the fast lane,
// and the net/http lane with fast_lane = false), and the client faults of
// faults_client_test.go on both front-ends. Each case has a
// service of its own (two raw instances, so a retry has somewhere to go and
// pools do not mix), drives the real ferry binary with raw bytes, and
// checks what SPEC §11 guarantees: how many times the backends executed
// the request, the status and bytes the client got, whether the client
// connection is still usable (its next request gets its own answer) or
// closed, whether the upstream connection went back to the pool or was
// never used again, and that the in-flight counters are released.
//
// The cases run concurrently (they mostly wait on timers) and report as
// subtests afterwards. FERRY_FAULTS=substring runs only matching cases.
func TestFaultMatrix(t *testing.T) {
	agent := consultest.Start(t)
	// One lane at a time: each case's service is one blocking query to
	// Consul, whose agent allows 200 connections per client address.
	for _, lane := range []string{"fast", "nethttp"} {
		t.Run(lane, func(t *testing.T) {
			cases := faultCases(lane)
			if len(cases) == 0 {
				t.Skip("no case matches FERRY_FAULTS")
			}
			env := startFaultEnv(t, agent, lane, cases)
			results := runConcurrently(cases, 16, func(fc *faultCase) []string { return env.run(fc) })
			for i, fc := range cases {
				t.Run(strings.TrimPrefix(fc.name, lane+"/"), func(t *testing.T) {
					for _, e := range results[i] {
						t.Error(e)
					}
				})
			}
			env.checkReleased(t)
		})
	}
}

// faultCase is one cell of the matrix.
type faultCase struct {
	name    string         // lane/fault/method/conn
	fault   *upstreamFault // one of fault and client is set
	client  *clientFault
	method  string
	reused  bool
	service string
	live    []*rawBackend
}

// faultCases generates the matrix for one lane.
func faultCases(lane string) []*faultCase {
	filter := os.Getenv("FERRY_FAULTS")
	var out []*faultCase
	for i := range upstreamFaults {
		f := &upstreamFaults[i]
		methods := f.methods
		if methods == nil {
			methods = []string{"GET", "HEAD", "POST"}
		}
		if f.chunkedPost {
			methods = append(methods[:len(methods):len(methods)], "POST-chunked")
		}
		for _, m := range methods {
			for _, reused := range []bool{false, true} {
				if reused && f.newOnly {
					continue
				}
				conn := "new"
				if reused {
					conn = "reused"
				}
				name := lane + "/" + f.name + "/" + m + "/" + conn
				if filter != "" && !strings.Contains(name, filter) {
					continue
				}
				out = append(out, &faultCase{name: name, fault: f, method: m, reused: reused,
					service: fmt.Sprintf("fm-%s-%03d", lane, len(out))})
			}
		}
	}
	for i := range clientFaults {
		name := lane + "/client/" + clientFaults[i].name
		if filter == "" || strings.Contains(name, filter) {
			out = append(out, &faultCase{name: name, client: &clientFaults[i],
				service: fmt.Sprintf("fm-%s-%03d", lane, len(out))})
		}
	}
	return out
}

// runConcurrently runs fn over cases, n at a time, and returns the
// results in order.
func runConcurrently[C, R any](cases []C, n int, fn func(C) R) []R {
	out := make([]R, len(cases))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = fn(c)
		}()
	}
	wg.Wait()
	return out
}

// faultEnv is one ferry (one lane) in front of every case's service.
type faultEnv struct {
	t    *testing.T
	f    *ferry
	addr string
}

// startFaultEnv starts each case's backends, registers them, and starts
// ferry with a route and a service block per case.
func startFaultEnv(t *testing.T, agent *consultest.Agent, lane string, cases []*faultCase) *faultEnv {
	t.Helper()
	var cfg strings.Builder
	cfg.WriteString(laneConfig(lane))
	var regs []*api.AgentServiceRegistration
	for _, fc := range cases {
		seen := &tagSeen{}
		instances, rt := "two", "3s"
		var script rawScript
		switch {
		case fc.client != nil:
			script, rt = faultScript(fc.client.script), "30s" // the client leaves long before
		case fc.fault.slow:
			script, rt, instances = faultScript(fc.fault.script), "1s", fc.fault.instances
		default:
			script, instances = faultScript(fc.fault.script), fc.fault.instances
		}
		var ports []int
		switch instances {
		case "dead+dead":
			ports = []int{deadPort(t), deadPort(t)}
		case "dead+live":
			b := startRawBackend(t, fc.service+"-b", seen, script)
			fc.live = []*rawBackend{b}
			ports = []int{deadPort(t), b.Port()}
		default:
			a := startRawBackend(t, fc.service+"-a", seen, script)
			b := startRawBackend(t, fc.service+"-b", seen, script)
			fc.live = []*rawBackend{a, b}
			ports = []int{a.Port(), b.Port()}
		}
		for i, p := range ports {
			regs = append(regs, &api.AgentServiceRegistration{
				ID: fmt.Sprintf("%s-%d", fc.service, i), Name: fc.service, Address: "127.0.0.1", Port: p,
				Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
			})
		}
		fmt.Fprintf(&cfg, "service %q {\n  response_timeout = %q\n}\nroute %q {\n  path_prefix = \"/%s\"\n  service = %q\n}\n",
			fc.service, rt, fc.service, fc.service, fc.service)
	}
	registerAll(t, agent.Client(), regs)
	f := startQuietFerry(t, agent.HTTPAddr, cfg.String())
	env := &faultEnv{t: t, f: f, addr: strings.TrimPrefix(f.URL, "http://")}
	waitFor(t, 30*time.Second, "every case's instances in /v1/upstreams", func() bool {
		n := 0
		for _, s := range upstreams(t, f).Services {
			if strings.HasPrefix(s.Name, "fm-") && len(s.Instances) == 2 && s.Healthy == 2 {
				n++
			}
		}
		return n == len(cases)
	})
	return env
}

// faultScript applies the fault to a request's first execution only, and
// answers everything else (warm-ups, retries, follow-ups) normally.
func faultScript(fault rawScript) rawScript {
	return func(c *rawConn, a *arrival) bool {
		if fault != nil && a.First && strings.HasPrefix(a.Tag, "x") {
			return fault(c, a)
		}
		c.write(okResponse(a.Method, a.Tag))
		return true
	}
}

// registerAll registers instances four at a time.
func registerAll(t *testing.T, c *api.Client, regs []*api.AgentServiceRegistration) {
	t.Helper()
	errs := runConcurrently(regs, 4, func(r *api.AgentServiceRegistration) []string {
		if err := c.Agent().ServiceRegister(r); err != nil {
			return []string{fmt.Sprintf("register %s: %v", r.ID, err)}
		}
		return nil
	})
	for _, e := range errs {
		if e != nil {
			t.Fatal(e[0])
		}
	}
}

// deadPort returns a loopback port that refuses connections: a socket is
// bound to it but does not listen, so that no later listener (another
// case's backend) can take the port while the test runs.
func deadPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// checkReleased checks, once every case has ended, that ferry holds no
// request in flight for any of them: neither a service's
// ferry_proxy_requests_in_flight nor an instance's in_flight.
func (e *faultEnv) checkReleased(t *testing.T) {
	t.Helper()
	var last string
	ok := pollUntil(5*time.Second, func() bool {
		last = ""
		for _, s := range scrape(t, e.f.AdminURL) {
			if s.name == "ferry_proxy_requests_in_flight" && s.value != 0 {
				last += fmt.Sprintf(" ferry_proxy_requests_in_flight{service=%q}=%v", s.labels["service"], s.value)
			}
		}
		for _, s := range upstreams(t, e.f).Services {
			for _, i := range s.Instances {
				if i.InFlight != 0 {
					last += fmt.Sprintf(" instance %s in_flight=%d", i.ID, i.InFlight)
				}
			}
		}
		return last == ""
	})
	if !ok {
		t.Errorf("in flight after every case ended:%s; want nothing", last)
	}
}

// pollUntil polls cond every 20 ms for up to d.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caseID makes tags unique per case and step.
func caseID(fc *faultCase, step string) string {
	return step + strings.TrimPrefix(fc.service, "fm-")
}

// faultRequest is the raw fault request for the case's method: POST
// carries an 11-byte body, POST-chunked the same body chunked.
func faultRequest(fc *faultCase, tag string) string {
	target := "/" + fc.service + "/fault?tag=" + tag
	const body = "hello=world"
	switch fc.method {
	case "POST":
		return "POST " + target + " HTTP/1.1\r\nHost: ferry.test\r\nContent-Type: text/plain\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
	case "POST-chunked":
		return "POST " + target + " HTTP/1.1\r\nHost: ferry.test\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
			chunk(body)
	}
	return fc.method + " " + target + " HTTP/1.1\r\nHost: ferry.test\r\n\r\n"
}

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// TestDifferential sends the same raw bytes through nginx (Debian's, set up
// as `make bench` sets it up) and through both of ferry's front-ends, each
// in front of its own copy of the same raw backend, and compares what the
// backend received (request line, Host, body), the status classes the
// client got, and whether the client connection was kept. Every
// disagreement fails unless the case says it is deliberate, with its RFC
// section; a table of all of them is logged. After every case a fresh
// request must get its own answer from each proxy.
func TestDifferential(t *testing.T) {
	agent := consultest.Start(t)
	proxies := []*diffProxy{{name: "nginx"}, {name: "fast"}, {name: "nethttp"}}
	var regs []*api.AgentServiceRegistration
	for _, p := range proxies {
		p.req = startRawBackend(t, p.name+"-req", &tagSeen{}, faultScript(nil))
		p.rf = startRawBackend(t, p.name+"-rf", &tagSeen{}, responseFaultScript)
		if p.name == "nginx" {
			continue
		}
		for _, b := range []*rawBackend{p.req, p.rf} {
			regs = append(regs, &api.AgentServiceRegistration{ID: b.name, Name: "diff-" + b.name,
				Address: "127.0.0.1", Port: b.Port(), Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}})
		}
	}
	registerAll(t, agent.Client(), regs)
	proxies[0].addr = startNginx(t, proxies[0].req.Addr(), proxies[0].rf.Addr())
	for _, p := range proxies[1:] {
		f := startQuietFerry(t, agent.HTTPAddr, laneConfig(p.name)+fmt.Sprintf(diffFerryConfig, p.name))
		p.addr = strings.TrimPrefix(f.URL, "http://")
		waitFor(t, 15*time.Second, p.name+" routing to both backends", func() bool {
			return p.fresh("warm0") == "" && p.freshRF("warm1") == ""
		})
	}

	corpus := diffCorpus()
	got := make([][]diffObs, len(proxies)) // [proxy][case]
	var wg sync.WaitGroup
	for i, p := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = runConcurrently(indexes(len(corpus)), 8, func(c int) diffObs {
				return p.play(corpus[c], caseTag(c))
			})
		}()
	}
	wg.Wait()
	alone := make([]map[string]diffObs, len(proxies)) // [proxy][case name], tags as {T}
	for i := range proxies {
		alone[i] = map[string]diffObs{}
		for c, dc := range corpus {
			if dc.legal == "" {
				alone[i][dc.name] = got[i][c].untagged(caseTag(c))
			}
		}
	}
	var report diffReport
	for c, dc := range corpus {
		t.Run(dc.name, func(t *testing.T) {
			report.add(dc, compare(t, dc, got[0][c], got[1][c], got[2][c], caseTag(c)))
			if dc.legal == "" {
				return
			}
			// Judged on every request (SPEC §11): after a legal request,
			// a mutation gets what it gets on a connection of its own.
			for i, p := range proxies[1:] {
				i++
				want := pipelined(alone[i][dc.legal], alone[i][dc.mutation])
				if g := got[i][c].untagged(caseTag(c)); g.String() != want.String() {
					t.Errorf("%s: after %s, got %s; alone, the same bytes got %s", p.name, dc.legal, g, want)
				}
			}
		})
	}
	testResponseFaults(t, proxies, &report)
	t.Logf("%d request cases, %d response cases; disagreements with nginx, pipelined cases grouped by mutation\n"+
		"(case | nginx | fast | nethttp; \"=\": as nginx; {T}: the case's tag):\n%s",
		len(corpus), len(responseFaultCases()), report.String())
}

// diffReport gathers the disagreements, a pipelined mutation's cases with
// the same observations on one line.
type diffReport struct {
	keys  []string
	after map[string][]string // key → the legal requests it came after
}

func (r *diffReport) add(dc diffCase, row string) {
	if row == "" {
		return
	}
	name := dc.name
	if dc.legal != "" {
		name = "pipelined " + strings.TrimPrefix(dc.mutation, "alone/")
	}
	key := name + " | " + row
	if r.after == nil {
		r.after = map[string][]string{}
	}
	if _, ok := r.after[key]; !ok {
		r.keys = append(r.keys, key)
		r.after[key] = []string{}
	}
	if dc.legal != "" {
		r.after[key] = append(r.after[key], strings.TrimPrefix(dc.legal, "alone/"))
	}
}

func (r *diffReport) String() string {
	var b strings.Builder
	for _, k := range r.keys {
		name, row, _ := strings.Cut(k, " | ")
		if after := r.after[k]; len(after) > 0 {
			name += " after " + strings.Join(after, ", ")
		}
		fmt.Fprintf(&b, "%s | %s\n", name, row)
	}
	return b.String()
}

const diffFerryConfig = `
limits {
  read_header_timeout = "2s"
  read_timeout        = "2s"
}
route "responses" {
  path_prefix = "/rf"
  service     = "diff-%[1]s-rf"
}
route "requests" {
  path_prefix = "/"
  service     = "diff-%[1]s-req"
}
`

// diffProxy is one proxy under comparison, with its own backends.
type diffProxy struct {
	name    string
	addr    string
	req, rf *rawBackend
}

// diffObs is what one proxy did with one case.
type diffObs struct {
	recv  []string // what the backend received, in order
	resp  string   // the status classes the client got, in order
	conn  string   // kept, closed, timeout (still waiting), or the extra bytes
	fresh string   // problem with the fresh request after the case
}

func (o diffObs) String() string {
	return fmt.Sprintf("recv=[%s] resp=[%s] conn=%s", strings.Join(o.recv, " | "), o.resp, o.conn)
}

// play sends one case on a new connection and observes.
func (p *diffProxy) play(c diffCase, tag string) diffObs {
	var o diffObs
	raw := strings.ReplaceAll(c.raw, "{T}", tag)
	cl, err := dialRaw(p.addr)
	if err != nil {
		return diffObs{conn: err.Error()}
	}
	cl.send(raw) // a proxy may close before taking it all: what it answered tells
	var classes []string
	for range max(c.requests, 1) {
		resp, err := cl.read("GET", 3500*time.Millisecond)
		if resp == nil {
			o.conn = "closed"
			if isTimeout(err) {
				o.conn = "timeout"
			}
			break
		}
		classes = append(classes, strconv.Itoa(resp.Status/100)+"xx")
		if err != nil {
			// An answer cut short (a refusal whose body a reset lost):
			// what the comparison asks is kept or closed.
			o.conn = "closed"
			break
		}
	}
	if o.conn == "" {
		o.conn = afterState(cl.after(250 * time.Millisecond))
	}
	cl.Close()
	o.resp = strings.Join(classes, " ")
	pollUntil(2*time.Second, func() bool { return p.req.Idle() })
	time.Sleep(100 * time.Millisecond) // a forwarded request may still be on its way
	for _, a := range p.req.Arrivals() {
		if strings.HasPrefix(a.Tag, tag) {
			o.recv = append(o.recv, summary(a))
		}
	}
	o.fresh = p.fresh(tag + "-f")
	return o
}

// afterState names what followed the last answer: "kept" (nothing, the
// connection open), "closed", "extra-answer-4xx" (an answer to no request
// the client counted: the proxy read some bytes as a request of their
// own), or "extra-bytes".
func afterState(after string) string {
	switch {
	case after == "quiet":
		return "kept"
	case after == "closed":
		return after
	case strings.HasPrefix(after, `bytes "HTTP/1.`) && len(after) >= len(`bytes "HTTP/1.1 4`):
		return "extra-answer-" + after[len(`bytes "HTTP/1.1 `):][:1] + "xx"
	}
	return "extra-bytes"
}

// caseTag names case c's requests: six bytes, none a prefix of another.
func caseTag(c int) string { return fmt.Sprintf("c%04dz", c) }

// untagged is o with the case's tag written {T}, to compare cases.
func (o diffObs) untagged(tag string) diffObs {
	u := o
	u.recv = nil
	for _, r := range o.recv {
		u.recv = append(u.recv, strings.ReplaceAll(r, tag, "{T}"))
	}
	u.conn = strings.ReplaceAll(o.conn, tag, "{T}")
	return u
}

// pipelined is what a legal request followed by a mutation should get,
// from what each got alone: both received and answered in turn, the
// connection left as the mutation alone left it.
func pipelined(legal, mutation diffObs) diffObs {
	o := diffObs{conn: mutation.conn}
	for _, r := range legal.recv {
		o.recv = append(o.recv, strings.ReplaceAll(r, "{T}", "{T}-a"))
	}
	o.recv = append(o.recv, mutation.recv...)
	o.resp = strings.TrimSpace(legal.resp + " " + mutation.resp)
	return o
}

// summary is what the comparison looks at in a received request: the
// request line, the Host (case and port aside: nginx's $host drops them),
// the body, and any field name with an underscore.
func summary(a arrival) string {
	host := strings.ToLower(a.Host)
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	if a.HostCount == 0 {
		host = "(none)"
	}
	s := fmt.Sprintf("%s %s host=%s body=%q", a.Method, shorten(a.Target), host, a.Body)
	for _, h := range a.Header {
		if strings.Contains(h[0], "_") {
			s += " " + h[0]
		}
	}
	return s
}

func shorten(s string) string {
	if len(s) > 100 {
		return s[:60] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// fresh checks that a new request gets its own answer.
func (p *diffProxy) fresh(tag string) string { return p.freshAt("/fresh?tag="+tag, tag) }

func (p *diffProxy) freshRF(tag string) string { return p.freshAt("/rf/ok?tag="+tag, tag) }

func (p *diffProxy) freshAt(target, tag string) string {
	cl, err := dialRaw(p.addr)
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	if err := cl.send("GET " + target + " HTTP/1.1\r\nHost: ferry.test\r\n\r\n"); err != nil {
		return err.Error()
	}
	resp, err := cl.read("GET", 5*time.Second)
	if err != nil || resp.Status != 200 || string(resp.Body) != "own:"+tag {
		return fmt.Sprintf("a fresh request got %s, want 200 %q", describe(resp, err), "own:"+tag)
	}
	return ""
}

// compare fails t for every undeliberate disagreement of ferry's lanes with
// nginx, and for every fresh request without its own answer; it returns
// the disagreement as a report row, tags written {T} ("" if none).
func compare(t *testing.T, dc diffCase, nginx, fast, nethttp diffObs, tag string) string {
	for _, o := range []struct {
		name string
		obs  diffObs
	}{{"nginx", nginx}, {"fast", fast}, {"nethttp", nethttp}} {
		if o.obs.fresh != "" {
			t.Errorf("%s, after the case: %s", o.name, o.obs.fresh)
		}
	}
	n := nginx.String()
	if fast.String() == n && nethttp.String() == n {
		return ""
	}
	un := nginx.untagged(tag).String()
	line := fmt.Sprintf("%s | %s | %s", un, mark(fast.untagged(tag), un), mark(nethttp.untagged(tag), un))
	switch {
	case dc.deliberate == "":
		if fast.String() != n {
			t.Errorf("fast lane: got %s, nginx %s", fast, n)
		}
		if nethttp.String() != n {
			t.Errorf("net/http lane: got %s, nginx %s", nethttp, n)
		}
	case fast.String() != nethttp.String():
		t.Errorf("deliberate difference from nginx (%s), but the lanes disagree: fast %s, net/http %s", dc.deliberate, fast, nethttp)
	default:
		line += " | deliberate: " + dc.deliberate
	}
	return line
}

// mark is an observation in the report, "=" where it equals nginx's.
func mark(o diffObs, nginx string) string {
	if o.String() == nginx {
		return "="
	}
	return o.String()
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout")
}

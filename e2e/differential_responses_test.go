package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The response side of the differential test: the upstream faults of the
// failure-path matrix that end within a second (late bytes, wrong framing,
// 1xx, HEAD/204/304 bodies, bare-LF heads, resets), each requested through
// every proxy, one case at a time, so that a connection a fault left out of
// step can only hurt the fresh request that follows it.

// responseFaultCase is one upstream fault requested with one method.
type responseFaultCase struct {
	fault  *upstreamFault
	method string
}

func (c responseFaultCase) name() string { return "response/" + c.fault.name + "/" + c.method }

// responseFaultCases are the matrix's faults with a script that answers
// promptly, with GET (HEAD for the faults that are about HEAD).
func responseFaultCases() []responseFaultCase {
	var out []responseFaultCase
	for i := range upstreamFaults {
		f := &upstreamFaults[i]
		if f.script == nil || f.slow {
			continue
		}
		method := "GET"
		if f.methods != nil && f.methods[0] == "HEAD" {
			method = "HEAD"
		}
		out = append(out, responseFaultCase{f, method})
	}
	return out
}

// responseFaultScript finds the fault by the last segment of the path
// (/rf/t/<tag>/<fault>) and applies it to the first execution; anything
// else is answered normally.
func responseFaultScript(c *rawConn, a *arrival) bool {
	path, _, _ := strings.Cut(a.Target, "?")
	name := path[strings.LastIndexByte(path, '/')+1:]
	for i := range upstreamFaults {
		if f := &upstreamFaults[i]; f.name == name && f.script != nil && a.First {
			return f.script(c, a)
		}
	}
	c.write(okResponse(a.Method, a.Tag))
	return true
}

// testResponseFaults runs the response cases on every proxy (the proxies in
// parallel, the cases of one proxy in turn) and compares them.
func testResponseFaults(t *testing.T, proxies []*diffProxy, report *diffReport) {
	cases := responseFaultCases()
	got := make([][]diffObs, len(proxies))
	var wg sync.WaitGroup
	for i, p := range proxies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c, rc := range cases {
				got[i] = append(got[i], p.playResponse(rc, fmt.Sprintf("r%04dz", c)))
			}
		}()
	}
	wg.Wait()
	for c, rc := range cases {
		t.Run(rc.name(), func(t *testing.T) {
			dc := diffCase{name: rc.name(), deliberate: responseDeliberate[rc.fault.name]}
			report.add(dc, compare(t, dc, got[0][c], got[1][c], got[2][c], fmt.Sprintf("r%04dz", c)))
		})
	}
}

// responseDeliberate lists where ferry answers an upstream fault
// differently from nginx on purpose (docs/forwarding-faults.md).
var responseDeliberate = map[string]string{
	"reset-before-head":   "RFC 9110 §9.2.2, RFC 9112 §9.3.1: a GET whose reused connection failed before any answer may be resent on a new connection; nginx (one server) answers 502",
	"two-content-lengths": "RFC 9112 §6.3 (5): a proxy MUST discard such a response and answer 502; nginx 1.22 takes the last value and waits for a byte that never comes",
	"103-then-final":      "RFC 9110 §15.2: a proxy forwards 1xx answers and then the final one; nginx 1.22 takes the 103 for the final answer and never answers",
	"100-then-final":      "RFC 9110 §15.2: a proxy forwards 1xx answers and then the final one; nginx 1.22 takes the 100 for the final answer and never answers",
	"bad-chunk-size":      "RFC 9110 §15.6.3: a gateway that received an invalid response answers 502; ferry holds the head until the body starts, so nothing had reached the client and it answers 502 on a connection that stays usable; nginx had sent the head and closes",
}

// playResponse requests one fault and observes: how many times the backend
// executed it, the status class and whether the client got the backend's
// own answer, the client connection, and a fresh request afterwards.
func (p *diffProxy) playResponse(rc responseFaultCase, tag string) diffObs {
	var o diffObs
	cl, err := dialRaw(p.addr)
	if err != nil {
		return diffObs{conn: err.Error()}
	}
	cl.send(rc.method + " /rf/t/" + tag + "/" + rc.fault.name + " HTTP/1.1\r\nHost: ferry.test\r\n\r\n")
	resp, rerr := cl.read(rc.method, 5*time.Second)
	switch v := classify(resp, rerr, rc.method, tag); {
	case resp == nil && isTimeout(rerr):
		o.conn = "timeout"
	case resp == nil:
		o.conn = "closed"
	default:
		o.resp = fmt.Sprintf("%dxx %s", resp.Status/100, v.kind)
		if rerr != nil {
			o.conn = "cut"
		}
	}
	if o.conn == "" {
		o.conn = afterState(cl.after(250 * time.Millisecond))
	}
	cl.Close()
	pollUntil(2*time.Second, func() bool { return p.rf.Idle() })
	time.Sleep(150 * time.Millisecond) // late bytes are sent 100 ms after the answer
	o.recv = []string{fmt.Sprintf("executed ×%d", len(arrivalsOf([]*rawBackend{p.rf}, tag)))}
	o.fresh = p.freshRF(tag + "-f")
	return o
}

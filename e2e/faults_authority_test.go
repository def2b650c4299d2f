package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/ferry-proxy/ferry/internal/consultest"
)

// TestFaultRequestAuthority checks, on both front-ends, what SPEC §11 says
// of a request's authority and target: an absolute-form target routes and
// forwards with one authority (RFC 9112 §3.2.2: the target's, not the Host
// field's); the query is forwarded byte for byte; a request without a
// usable Host is refused (empty, RFC 9110 §4.2.1) or forwarded without one
// (HTTP/1.0), never with the upstream's own address.
func TestFaultRequestAuthority(t *testing.T) {
	agent := consultest.Start(t)
	for _, lane := range []string{"fast", "nethttp"} {
		t.Run(lane, func(t *testing.T) {
			admin := startRawBackend(t, lane+"-admin", &tagSeen{}, faultScript(nil))
			other := startRawBackend(t, lane+"-other", &tagSeen{}, faultScript(nil))
			var regs []*api.AgentServiceRegistration
			for _, b := range []*rawBackend{admin, other} {
				regs = append(regs, &api.AgentServiceRegistration{ID: b.name, Name: "auth-" + b.name,
					Address: "127.0.0.1", Port: b.Port(), Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}})
			}
			registerAll(t, agent.Client(), regs)
			f := startQuietFerry(t, agent.HTTPAddr, laneConfig(lane)+fmt.Sprintf(authorityConfig, lane))
			addr := strings.TrimPrefix(f.URL, "http://")
			p := &diffProxy{name: lane, addr: addr, req: other, rf: other}
			waitFor(t, 15*time.Second, "routing", func() bool { return p.fresh("warm") == "" })
			// The admin route's service is discovered on its own: wait for
			// it too, or the first case races its first instance.
			waitFor(t, 15*time.Second, "routing to admin.example", func() bool {
				cl, err := dialRaw(addr)
				if err != nil {
					return false
				}
				defer cl.Close()
				cl.send("GET /fresh?tag=warmadmin HTTP/1.1\r\nHost: admin.example\r\n\r\n")
				resp, err := cl.read("GET", 5*time.Second)
				return err == nil && resp.Status == 200 && string(resp.Body) == "own:warmadmin"
			})

			for i, tc := range []struct {
				name   string
				raw    string
				status int
				to     *rawBackend // nil: nothing may reach a backend
				target string      // as the backend must receive it
				host   string      // as the backend must receive it ("": none, or empty)
			}{
				{name: "absolute-form routes by its authority",
					raw:    "GET http://admin.example/x?tag={T} HTTP/1.1\r\nHost: other.example\r\n\r\n",
					status: 200, to: admin, target: "/x?tag={T}", host: "admin.example"},
				{name: "absolute-form to the catch-all",
					raw:    "GET http://other.example/x?tag={T} HTTP/1.1\r\nHost: admin.example\r\n\r\n",
					status: 200, to: other, target: "/x?tag={T}", host: "other.example"},
				{name: "query with sub-delims arrives byte for byte",
					raw:    "GET /t/{T}/q?x=!$'()*,;=:@/?&y=%20 HTTP/1.1\r\nHost: other.example\r\n\r\n",
					status: 200, to: other, target: "/t/{T}/q?x=!$'()*,;=:@/?&y=%20", host: "other.example"},
				{name: "query with bad escapes arrives byte for byte",
					raw:    "GET /t/{T}/q?a=%zz&b=% HTTP/1.1\r\nHost: other.example\r\n\r\n",
					status: 200, to: other, target: "/t/{T}/q?a=%zz&b=%", host: "other.example"},
				{name: "empty Host is refused",
					raw:    "GET /x?tag={T} HTTP/1.1\r\nHost:\r\n\r\n",
					status: 400},
				{name: "HTTP/1.0 without Host is forwarded without one",
					raw:    "GET /x?tag={T} HTTP/1.0\r\n\r\n",
					status: 200, to: other, target: "/x?tag={T}", host: ""},
			} {
				tag := fmt.Sprintf("a%d%s", i, lane)
				t.Run(tc.name, func(t *testing.T) {
					cl, err := dialRaw(addr)
					if err != nil {
						t.Fatal(err)
					}
					defer cl.Close()
					cl.send(strings.ReplaceAll(tc.raw, "{T}", tag))
					resp, rerr := cl.read("GET", 5*time.Second)
					if resp == nil || resp.Status != tc.status {
						t.Errorf("got %s, want %d", describe(resp, rerr), tc.status)
					}
					time.Sleep(100 * time.Millisecond) // let the backend record it
					got := append(arrivalsOf([]*rawBackend{admin}, tag), arrivalsOf([]*rawBackend{other}, tag)...)
					if tc.to == nil {
						if len(got) != 0 {
							t.Errorf("a backend received %q, want nothing forwarded", got[0].Raw)
						}
						return
					}
					want := arrivalsOf([]*rawBackend{tc.to}, tag)
					if len(want) != 1 || len(got) != 1 {
						var seen []string
						for _, a := range got {
							seen = append(seen, fmt.Sprintf("%s got %s with Host %q", a.Instance, a.Target, a.Host))
						}
						t.Fatalf("got %v, want one request at %s", seen, tc.to.name)
					}
					a := want[0]
					if wt := strings.ReplaceAll(tc.target, "{T}", tag); a.Target != wt {
						t.Errorf("target: got %q, want %q", a.Target, wt)
					}
					// RFC 9112 §3.2: without an authority, an HTTP/1.1 request
					// carries an empty Host; nginx sends none.
					if tc.host == "" && a.Host != "" {
						t.Errorf("Host: got %q, want none or empty (the client sent none; %s is the upstream's own address)", a.Host, tc.to.Addr())
					}
					if tc.host != "" && a.Host != tc.host {
						t.Errorf("Host: got %q, want %q", a.Host, tc.host)
					}
				})
			}
		})
	}
}

const authorityConfig = `
route "admin" {
  host        = "admin.example"
  path_prefix = "/"
  service     = "auth-%[1]s-admin"
}
route "other" {
  path_prefix = "/"
  service     = "auth-%[1]s-other"
}
`

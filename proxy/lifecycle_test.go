package proxy

import (
	"io"
	"net/http"
	"testing"

	"github.com/ferry-proxy/ferry/proxy/route"
)

func TestInFlightCountedUntilBodyClosed(t *testing.T) {
	f := newFixture(t, "text")
	release := make(chan struct{})
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			io.WriteString(w, "head")
			w.(http.Flusher).Flush()
			<-release
		}
		io.WriteString(w, "done")
	})
	set := setOf(t, "s", addr(be), deadAddr(t))
	f.route([]route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}, map[string]route.ServiceSpec{"s": {Retries: 0}}, set)
	live := f.reg.State("s", set.Instances[0].Key())
	dead := f.reg.State("s", set.Instances[1].Key())

	resp, err := f.front.Client().Get(f.front.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// Headers are in, the body is still streaming: the attempt holds the instance.
	if n := live.InFlight(); n != 1 {
		t.Errorf("while streaming: got %d in flight, want 1", n)
	}
	close(release)
	io.ReadAll(resp.Body)
	resp.Body.Close()

	for range 4 { // both instances in turn: successes and refused connections
		f.get("/x")
	}
	waitFor(t, "in-flight counts back to 0", func() bool { return live.InFlight() == 0 && dead.InFlight() == 0 })
	svc := f.handler.Table().Service("s")
	waitFor(t, "the retry budget back to 0", func() bool {
		return svc.Budget.Requests.Load() == 0 && svc.Budget.Retries.Load() == 0
	})
}

func TestStoreKeepsInFlightRequestsOnTheirTable(t *testing.T) {
	f := newFixture(t, "text")
	entered, release := make(chan struct{}), make(chan struct{})
	old := backend(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "old")
	})
	newer := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") })
	routes := []route.RouteSpec{{Name: "r", PathPrefix: "/", Service: "s"}}
	f.route(routes, nil, setOf(t, "s", addr(old)))

	done := make(chan string)
	go func() {
		resp, err := f.front.Client().Get(f.front.URL + "/")
		if err != nil {
			done <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- string(b)
	}()
	<-entered
	f.route(routes, nil, setOf(t, "s", addr(newer)))
	if _, body := f.get("/"); body != "new" {
		t.Errorf("request after Store: got %q, want new", body)
	}
	close(release)
	if got := <-done; got != "old" {
		t.Errorf("request in flight across Store: got %q, want old", got)
	}
}

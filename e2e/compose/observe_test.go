package compose

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// upstream is the part of a ferry's GET /v1/upstreams the test reads.
type upstream struct {
	Name      string `json:"name"`
	Known     bool   `json:"known"`
	Stale     bool   `json:"stale"`
	Healthy   int    `json:"healthy"`
	Instances []struct {
		ID      string `json:"id"`
		Healthy bool   `json:"healthy"`
	} `json:"instances"`
}

var adminClient = &http.Client{Timeout: 3 * time.Second}

// upstreams reads a ferry's admin API at base (http://host:port).
func upstreams(base string) (map[string]upstream, error) {
	resp, err := adminClient.Get(base + "/v1/upstreams")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct{ Services []upstream }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("GET %s/v1/upstreams: %w", base, err)
	}
	m := map[string]upstream{}
	for _, s := range out.Services {
		m[s.Name] = s
	}
	return m, nil
}

// statusPage fetches a ferry's status page at base (http://host:port) and
// checks that it is the page (HTML naming ferry), served whole, and that
// its data endpoint names every one of services.
func statusPage(base string, services ...string) error {
	resp, err := adminClient.Get(base + "/")
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("GET %s/: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "ferry") {
		return fmt.Errorf("GET %s/: %d %s, %d bytes: not the status page", base, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	ups, err := upstreams(base)
	if err != nil {
		return err
	}
	for _, svc := range services {
		if _, ok := ups[svc]; !ok {
			return fmt.Errorf("%s/v1/upstreams does not list %s", base, svc)
		}
	}
	return nil
}

// healthyIDs returns the sorted IDs of a service's instances a ferry routes to.
func (u upstream) healthyIDs() []string {
	var ids []string
	for _, in := range u.Instances {
		if in.Healthy {
			ids = append(ids, in.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// passing returns the sorted IDs of a service's instances Consul reports
// passing (every check), as ferry's discovery asks for them.
func passing(c *api.Client, service string) ([]string, error) {
	entries, _, err := c.Health().Service(service, "", true, &api.QueryOptions{AllowStale: true})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

// waitFor checks cond every interval until it holds or timeout passes, and
// returns how long that took. The last reason cond gave is in the error.
func waitFor(timeout, interval time.Duration, cond func() (bool, string)) (time.Duration, error) {
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return time.Since(start), nil
		}
		select {
		case <-deadline.C:
			return time.Since(start), fmt.Errorf("not within %s: %s", timeout, why)
		case <-tick.C:
		}
	}
}

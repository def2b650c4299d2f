package discovery

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/hashicorp/consul/api"
)

// ClusterClient is what the change detector of scaled mode asks Consul: the
// checks of the cluster (/v1/health/state/any, honouring q.Filter) and the
// service catalog (/v1/catalog/services), as blocking queries or plain
// reads. ConsulCluster adapts an *api.Client. Implementations must be safe
// for concurrent use and honour the context carried by the QueryOptions.
type ClusterClient interface {
	Checks(q *api.QueryOptions) ([]CheckState, *api.QueryMeta, error)
	Services(q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error)
}

// CheckState is what the detector reads of a check: no output, no
// definition, so that decoding thousands of them stays cheap.
type CheckState struct {
	Node, CheckID, ServiceID, ServiceName, Status string
}

// ConsulCluster is the ClusterClient of a real Consul client.
type ConsulCluster struct {
	Client *api.Client
	// Config, when set, is the configuration Client was made from, as
	// api.NewClient completed it (address, scheme, HTTP client). Checks
	// then sends its own request instead of Client's: uncompressed and
	// decoded by checkList's scanner. The catalog loop reads the whole
	// check list on every registration change, and through Client that
	// read costs the agent a gzip of about a megabyte and ferry a gunzip
	// and a full encoding/json decode of it: about three times as long
	// (docs/benchmarks.md, issue 13). Without Config, Checks uses Client.
	Config *api.Config
}

// Checks lists the cluster's checks (filtered by q.Filter).
func (c ConsulCluster) Checks(q *api.QueryOptions) ([]CheckState, *api.QueryMeta, error) {
	if c.Config != nil && c.Config.HttpClient != nil {
		return c.rawChecks(q)
	}
	var out []CheckState
	meta, err := c.Client.Raw().Query("/v1/health/state/any", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Services lists the catalog's services and their tags.
func (c ConsulCluster) Services(q *api.QueryOptions) (map[string][]string, *api.QueryMeta, error) {
	return c.Client.Catalog().Services(q)
}

// bodies keeps the buffers answers are read into: a check list is about a
// megabyte, read several times a second under churn, and reading it into a
// fresh slice grown as it comes allocated several times its size each time.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// rawChecks is Checks as api.Client would send it (the same URL, query
// parameters, token and headers), but asking for an uncompressed answer:
// on the loopback to the local agent, compression only costs CPU on both
// sides. The options the detector sets are the ones honoured.
func (c ConsulCluster) rawChecks(q *api.QueryOptions) ([]CheckState, *api.QueryMeta, error) {
	cfg := c.Config
	params := url.Values{}
	dc := cmp.Or(q.Datacenter, cfg.Datacenter)
	if dc != "" {
		params.Set("dc", dc)
	}
	if ns := cmp.Or(q.Namespace, cfg.Namespace); ns != "" {
		params.Set("ns", ns)
	}
	if p := cmp.Or(q.Partition, cfg.Partition); p != "" {
		params.Set("partition", p)
	}
	if q.AllowStale {
		params.Set("stale", "")
	}
	if q.Filter != "" {
		params.Set("filter", q.Filter)
	}
	if q.WaitIndex != 0 {
		params.Set("index", strconv.FormatUint(q.WaitIndex, 10))
	}
	if q.WaitTime != 0 {
		params.Set("wait", strconv.FormatInt(q.WaitTime.Milliseconds(), 10)+"ms")
	}
	u := url.URL{Scheme: cfg.Scheme, Host: cfg.Address, Path: cfg.PathPrefix + "/v1/health/state/any", RawQuery: params.Encode()}
	req, err := http.NewRequestWithContext(q.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header = c.Client.Headers()
	if tok := cmp.Or(q.Token, cfg.Token); tok != "" {
		req.Header.Set("X-Consul-Token", tok)
	}
	if cfg.HttpAuth != nil {
		req.SetBasicAuth(cfg.HttpAuth.Username, cfg.HttpAuth.Password)
	}
	// Set explicitly, so that Go's transport neither asks for gzip nor
	// the agent's gzip handler compresses.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := cfg.HttpClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	buf := bodies.Get().(*bytes.Buffer)
	defer bodies.Put(buf) // nothing decoded refers to it: the scanner copies what it keeps
	buf.Reset()
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, nil, err
	}
	body := buf.Bytes()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("Unexpected response code: %d (%s)", resp.StatusCode, bytes.TrimSpace(body[:min(len(body), 512)]))
	}
	meta := &api.QueryMeta{KnownLeader: resp.Header.Get("X-Consul-Knownleader") == "true"}
	if s := resp.Header.Get("X-Consul-Index"); s != "" {
		if meta.LastIndex, err = strconv.ParseUint(s, 10, 64); err != nil {
			return nil, nil, fmt.Errorf("X-Consul-Index %q: %w", s, err)
		}
	}
	var out checkList
	if err := out.UnmarshalJSON(body); err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

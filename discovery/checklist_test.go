package discovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/hashicorp/consul/api"
)

// sampleChecks is a check list as Consul encodes it: n checks, every field
// of api.HealthCheck set, some with outputs that need escaping.
func sampleChecks(t testing.TB, n int, indent bool) []byte {
	t.Helper()
	var hc []*api.HealthCheck
	for i := range n {
		svc := fmt.Sprintf("svc-%d", i/3)
		hc = append(hc, &api.HealthCheck{
			Node: fmt.Sprintf("node-%d", i%8), CheckID: "service:" + svc + fmt.Sprint(i%3), Name: "alive",
			Status: []string{"passing", "warning", "critical"}[i%3], Notes: "n",
			Output:    fmt.Sprintf("HTTP GET http://10.0.0.%d/health: 200 OK Output: {\"ok\":[1,2],\"q\":\"a\\\"b\"}\n\u00e9\t", i%250),
			ServiceID: svc + fmt.Sprint(i%3), ServiceName: svc, ServiceTags: []string{"v1", "[x]"}, Type: "http",
			Definition:  api.HealthCheckDefinition{HTTP: "http://x/{y}", Header: map[string][]string{"A": {"b,c"}}},
			CreateIndex: uint64(i), ModifyIndex: uint64(i + 1),
		})
	}
	hc = append(hc, &api.HealthCheck{Node: "node-0", CheckID: "serfHealth", Name: "Serf Health Status", Status: "passing"})
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(hc, "", "    ")
	} else {
		b, err = json.Marshal(hc)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckListMatchesEncodingJSON(t *testing.T) {
	cases := map[string][]byte{
		"compact":  sampleChecks(t, 30, false),
		"indented": sampleChecks(t, 30, true),
		"empty":    []byte(" [ ] "),
		"nulls":    []byte(`[{"Node":null,"CheckID":"c","ServiceTags":null,"ExposedPort":-1.5e3,"Definition":{"a":[{}]}}]`),
		// Fall back to encoding/json: an escape in a kept field, a
		// field in another case, a kept field that is not a string.
		"escaped":    []byte(`[{"Node":"n\u00e9","CheckID":"c\"1","Status":"passing"}]`),
		"lowercase":  []byte(`[{"node":"n","CheckID":"c"}]`),
		"escapedkey": []byte(`[{"Nod\u0065":"n","CheckID":"c"}]`),
	}
	for name, b := range cases {
		var want []CheckState
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: encoding/json: %v", name, err)
		}
		var got checkList
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(want) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual([]CheckState(got), want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	if _, ok := scanChecks(sampleChecks(t, 30, true)); !ok {
		t.Error("the scanner fell back on Consul's own format")
	}
	for _, bad := range []string{``, `[`, `[{"Node":"n"`, `[{"Node":1}]`, `{}`, `[{"Node":"n"}] x`, `[{"Output":"abc}]`} {
		var got checkList
		if json.Valid([]byte(bad)) {
			continue // decoded by the fallback
		}
		if err := got.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// BenchmarkCheckList compares the scanner with encoding/json on 3,000
// checks as a dev agent sends them (indented).
func BenchmarkCheckList(b *testing.B) {
	data := sampleChecks(b, 3000, true)
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var out []CheckState
			if err := json.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, ok := scanChecks(data); !ok {
				b.Fatal("fell back")
			}
		}
	})
	b.Run("decoder+scanner", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var out checkList
			if err := json.NewDecoder(bytes.NewReader(data)).Decode(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

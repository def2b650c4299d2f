package main

import (
	"testing"
	"time"
)

func TestParseH2load(t *testing.T) {
	out := `starting benchmark...
spawning thread #0: 8 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
finished in 5.01s, 15806.20 req/s, 1.68MB/s
requests: 79031 total, 79287 started, 79031 done, 79000 succeeded, 31 failed, 20 errored, 1 timeout
status codes: 79031 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 8.42MB (8825487) total, 1.02MB (1067091) headers (space savings 90.21%), 4.82MB (5057984) data
                     min         max         mean         sd        +/- sd
time for request:      520us     25.61ms      6.15ms      2.32ms    72.53%
`
	r, err := parseH2load(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.RPS != 15806.20 || r.Requests != 79000 || r.Errors != 52 || r.P50 != 6150*time.Microsecond {
		t.Errorf("got %+v", r)
	}
	if _, err := parseH2load("h2load: connection refused"); err == nil {
		t.Error("no result: no error")
	}
}

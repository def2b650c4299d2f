// Command probe is the container image's health check: it sends one GET to a
// URL and exits 0 if the answer is 2xx, 1 otherwise. The image is built on
// scratch (no shell, no curl), so Docker's HEALTHCHECK runs this static binary
// in exec form instead.
//
//	probe [-timeout 2s] [URL]   # URL default: http://127.0.0.1:9901/healthz
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const defaultURL = "http://127.0.0.1:9901/healthz"

func main() {
	timeout := flag.Duration("timeout", 2*time.Second, "give up after this long")
	flag.Parse()
	url := defaultURL
	if flag.NArg() > 0 {
		url = flag.Arg(0)
	}
	if err := check(url, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

// check GETs url and reports an error unless the answer is 2xx within timeout.
func check(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the server finish its answer
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

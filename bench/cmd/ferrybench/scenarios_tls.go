package main

// Issue 15's scenarios: TLS and HTTP/2, ferry beside nginx with the same
// certificate (ECDSA P-256, generated) and the same TLS settings (TLS 1.2
// and 1.3, the libraries' default ciphers, ECDHE with X25519 or P-256).
//
//   (e) TLS keep-alive small responses: wrk over https, HTTP/1.1;
//   (f) a new TLS connection per request (Connection: close; wrk does not
//       resume sessions, so each is a full handshake): handshakes/s;
//   (g) HTTP/2 over TLS with h2load (Debian's nghttp2-client).
//
// setupTLS adds a TLS listener to the running ferry (a listener block, by a
// configuration reload) and a TLS server to nginx (its configuration
// rewritten, then SIGHUP), both proxying to the same backends as the plain
// ones. Other targets have no TLS URL and are skipped in these scenarios.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-proxy/ferry/bench/internal/benchkit"
	"github.com/ferry-proxy/ferry/internal/democerts"
)

var (
	h2Clients = flag.Int("h2-clients", 16, "h2load connections in scenario (g)")
	h2Streams = flag.Int("h2-streams", 16, "h2load concurrent streams per connection in scenario (g)")
)

var tlsScenarios = []scenario{
	{key: "e", title: "(e) TLS keep-alive, 64-byte responses (HTTP/1.1 over TLS)", tls: runTLSKeepAlive},
	{key: "f", title: "(f) a new TLS connection per request: full handshakes/s (ECDSA P-256)", tls: runTLSHandshakes},
	{key: "g", title: "(g) HTTP/2 over TLS, h2load (p50 column: h2load's mean; it reports no percentiles)", tls: runH2load},
}

func runTLSKeepAlive(ctx context.Context, t *target, o options) (run, error) {
	wr, err := runWrk(ctx, t.tlsURL+"/e", o.threads, o.conns, o.dur)
	return run{Requests: wr.Requests, Errors: wr.Errors, RPS: wr.RPS, P50: wr.P50, P99: wr.P99}, err
}

func runTLSHandshakes(ctx context.Context, t *target, o options) (run, error) {
	wr, err := runWrk(ctx, t.tlsURL+"/f", o.threads, o.conns, o.dur, "Connection: close")
	return run{Requests: wr.Requests, Errors: wr.Errors, RPS: wr.RPS, P50: wr.P50, P99: wr.P99}, err
}

// runH2load runs h2load for o.dur and parses its report:
//
//	finished in 5.00s, 41234.40 req/s, 3.05MB/s
//	requests: 206172 total, 206428 started, 206172 done, 206172 succeeded, 0 failed, 0 errored, 0 timeout
//	time for request:      520us     25.61ms      6.15ms      2.32ms    72.53%
func runH2load(ctx context.Context, t *target, o options) (run, error) {
	args := []string{"-D", strconv.Itoa(int(o.dur.Seconds())), "-c", strconv.Itoa(*h2Clients),
		"-m", strconv.Itoa(*h2Streams), "-t", strconv.Itoa(min(o.threads, *h2Clients)), t.tlsURL + "/g"}
	cmd := exec.CommandContext(ctx, "h2load", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return run{}, fmt.Errorf("h2load %v: %w\n%s", args, err, out.String())
	}
	return parseH2load(out.String())
}

func parseH2load(s string) (run, error) {
	var r run
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(strings.NewReplacer(",", "").Replace(line))
		switch {
		case strings.HasPrefix(line, "finished in") && len(f) >= 4:
			r.RPS, _ = strconv.ParseFloat(f[3], 64)
		case strings.HasPrefix(line, "requests:") && len(f) >= 15:
			// requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
			succeeded, _ := strconv.ParseInt(f[7], 10, 64)
			failed, _ := strconv.ParseInt(f[9], 10, 64)
			errored, _ := strconv.ParseInt(f[11], 10, 64)
			timeout, _ := strconv.ParseInt(f[13], 10, 64)
			r.Requests, r.Errors = succeeded, failed+errored+timeout
		case strings.HasPrefix(line, "time for request:") && len(f) >= 6:
			r.P50 = parseWrkDuration(f[5]) // the mean
		}
	}
	if r.Requests == 0 || r.RPS == 0 {
		return r, fmt.Errorf("h2load: no result in:\n%s", s)
	}
	return r, nil
}

// wantsTLS reports whether any scenario in o.only is a TLS one.
func wantsTLS(o options) bool {
	for _, s := range tlsScenarios {
		if strings.Contains(o.only, s.key) {
			return true
		}
	}
	return false
}

// setupTLS gives the running ferry and nginx of l a TLS listener each, with
// the same generated certificate, and sets their targets' tlsURL.
func setupTLS(ctx context.Context, l *lab, o options) error {
	dir := filepath.Join(l.dir, "tls")
	if err := democerts.Write(dir, []democerts.Leaf{{File: "bench", Names: []string{"localhost", "127.0.0.1"}}}); err != nil {
		return err
	}
	crt, key := filepath.Join(dir, "bench.crt"), filepath.Join(dir, "bench.key")
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, t := range l.targets {
		switch t.name {
		case "ferry":
			port, err := benchkit.FreePorts(1)
			if err != nil {
				return err
			}
			addr := "127.0.0.1:" + strconv.Itoa(port[0])
			path := filepath.Join(l.dir, "ferry.hcl")
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			conf := string(b) + fmt.Sprintf(ferryTLSListener, addr, crt, key)
			if o.hold > 0 && !strings.Contains(conf, "pprof") {
				conf = "pprof = true\n" + conf // for profiles by hand
			}
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				return err
			}
			resp, err := http.Post("http://"+l.ferryAdm+"/v1/reload", "", nil)
			if err != nil {
				return fmt.Errorf("ferry: reload with a TLS listener: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("ferry: reload with a TLS listener: %s", resp.Status)
			}
			t.tlsURL = "https://" + addr
		case "nginx":
			port, err := benchkit.FreePorts(1)
			if err != nil {
				return err
			}
			addr := "127.0.0.1:" + strconv.Itoa(port[0])
			path := filepath.Join(l.dir, "nginx.conf")
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			conf := strings.TrimRight(string(b), "\n")
			conf = strings.TrimSuffix(conf, "}") + fmt.Sprintf(nginxTLSServer, addr, crt, key) + "}\n"
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				return err
			}
			if err := syscall.Kill(t.proc.PID(), syscall.SIGHUP); err != nil {
				return fmt.Errorf("nginx: reload: %w", err)
			}
			t.tlsURL = "https://" + addr
		default:
			continue
		}
		if err := waitHTTPS(ctx, t.tlsURL+"/warm", roots, t.proc); err != nil {
			return fmt.Errorf("%s over TLS: %w", t.name, err)
		}
	}
	return nil
}

// waitHTTPS waits until url answers 200 over HTTP/1.1 and HTTP/2.
func waitHTTPS(ctx context.Context, url string, roots *x509.CertPool, p *benchkit.Proc) error {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}, Protocols: &protos}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: time.Second, Transport: tr}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited", p.Name)
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 && resp.ProtoMajor == 2 {
				return nil
			}
			err = fmt.Errorf("%s %s", resp.Proto, resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", url, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ferryTLSListener: TLS 1.2 and 1.3 (ferry's default min_version), h2 by
// ALPN; Go's default suites and curves.
const ferryTLSListener = `
listener "tls" {
  address = %q
  http2   = true
  tls {
    certificate {
      cert_file = %q
      key_file  = %q
    }
    min_version = "1.2"
  }
}
`

// nginxTLSServer: the same settings as ferry's listener — TLS 1.2 and 1.3,
// OpenSSL's default ciphers (ECDHE AEAD first), X25519 then P-256 (Go's
// order, without the post-quantum hybrid OpenSSL 3.0 lacks), session
// tickets on as in Go (no client here resumes), h2 by ALPN; the same
// upstream keep-alive pool as the plain server. keepalive_requests is raised
// from nginx's 1000: ferry does not close a client connection after a number
// of requests, and h2load does not reconnect (with 1000, each of its
// connections stops after 1000 requests and the rest of the run fails).
const nginxTLSServer = `  server {
    listen %s ssl http2;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    http2_max_concurrent_streams 100;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
`

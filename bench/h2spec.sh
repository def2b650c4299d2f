#!/usr/bin/env bash
# make h2spec: h2spec (github.com/summerwind/h2spec) against ferry's HTTP/2
# listeners — TLS with h2 by ALPN, and h2c with prior knowledge — in front of
# a Consul dev agent and the demo backend, all on loopback ports of their own.
# Installs h2spec with `go install` when it is not on PATH or in $(go env
# GOPATH)/bin. Prints each run's summary and failures; the full reports go to
# bin/h2spec-tls.txt and bin/h2spec-h2c.txt. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
CONSUL=${CONSUL:-$(command -v consul || echo bin/consul)}
H2SPEC=$(command -v h2spec || echo "$(go env GOPATH)/bin/h2spec")
if [ ! -x "$H2SPEC" ]; then
  go install github.com/summerwind/h2spec/cmd/h2spec@latest
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Free loopback ports, from the kernel.
ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(8)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
consul_http=${ports[0]} backend=${ports[5]} tls=${ports[6]} h2c=${ports[7]}
"$CONSUL" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -http-port "$consul_http" \
  -serf-lan-port "${ports[1]}" -serf-wan-port "${ports[2]}" -server-port "${ports[3]}" \
  -dns-port -1 -grpc-port -1 >"$work/consul.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$consul_http/v1/status/leader" 2>/dev/null | grep -q : && break
  sleep 0.1
done
bin/demo-backend -addr "127.0.0.1:$backend" -name web-1 2>"$work/backend.log" &
pids+=($!)
curl -fsS -X PUT -d "{\"Name\":\"web\",\"ID\":\"web-1\",\"Address\":\"127.0.0.1\",\"Port\":$backend}" \
  "http://127.0.0.1:$consul_http/v1/agent/service/register"
go run ./examples/tls-edge/gencerts -dir "$work/certs" >/dev/null
cat >"$work/ferry.hcl" <<HCL
admin = "127.0.0.1:${ports[4]}"
consul {
  address = "127.0.0.1:$consul_http"
}
listener "tls" {
  address = "127.0.0.1:$tls"
  http2   = true
  tls {
    certificate {
      cert_file = "$work/certs/shop.crt"
      key_file  = "$work/certs/shop.key"
    }
  }
}
listener "h2c" {
  address = "127.0.0.1:$h2c"
  http2   = true
}
route "web" {
  path_prefix = "/"
  service     = "web"
}
HCL
bin/ferry run -config "$work/ferry.hcl" >/dev/null 2>"$work/ferry.log" &
pids+=($!)
for _ in $(seq 150); do
  curl -fsS "http://127.0.0.1:${ports[4]}/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
"$H2SPEC" --version
rc=0
echo "== h2spec, TLS (h2 by ALPN), 127.0.0.1:$tls"
"$H2SPEC" -h 127.0.0.1 -p "$tls" -t -k -o 2 >bin/h2spec-tls.txt 2>&1 || rc=1
sed -n '/^Failures:/,$p' bin/h2spec-tls.txt
echo "== h2spec, h2c with prior knowledge, 127.0.0.1:$h2c"
"$H2SPEC" -h 127.0.0.1 -p "$h2c" -o 2 >bin/h2spec-h2c.txt 2>&1 || rc=1
sed -n '/^Failures:/,$p' bin/h2spec-h2c.txt
exit $rc

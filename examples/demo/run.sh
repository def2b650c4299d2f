#!/usr/bin/env bash
# make demo: a real Consul dev agent, three demo backends registered in it with
# health checks, and ferry routing to them. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONSUL=${CONSUL:-$(command -v consul || echo bin/consul)}
HTTP_ADDR=127.0.0.1:18500
export CONSUL_HTTP_ADDR=$HTTP_ADDR
work=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo
  echo "stopping: ${pids[*]}"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== starting Consul dev agent on $HTTP_ADDR (logs: $work/consul.log)"
"$CONSUL" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -http-port 18500 \
  -serf-lan-port 18301 -serf-wan-port 18302 -server-port 18300 -dns-port -1 -grpc-port -1 \
  >"$work/consul.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fsS "http://$HTTP_ADDR/v1/status/leader" 2>/dev/null | grep -q : && break
  sleep 0.1
done

register() { # name id port
  cat >"$work/$2.json" <<JSON
{"service": {"name": "$1", "id": "$2", "address": "127.0.0.1", "port": $3,
  "check": {"http": "http://127.0.0.1:$3/health", "interval": "1s", "timeout": "1s"}}}
JSON
  "$CONSUL" services register "$work/$2.json" >/dev/null
}

echo "== starting demo backends and registering them in Consul"
for i in 1 2; do
  bin/demo-backend -addr "127.0.0.1:900$i" -name "user-$i" 2>>"$work/backends.log" &
  pids+=($!)
  register user "user-$i" "900$i"
done
bin/demo-backend -addr 127.0.0.1:9003 -name order-1 2>>"$work/backends.log" &
pids+=($!)
register order order-1 9003

echo "== waiting for Consul's checks to pass"
for _ in $(seq 100); do
  users=$(curl -fsS "http://$HTTP_ADDR/v1/health/service/user?passing" | { grep -oE '"CheckID": ?"service:' || true; } | wc -l)
  orders=$(curl -fsS "http://$HTTP_ADDR/v1/health/service/order?passing" | { grep -oE '"CheckID": ?"service:' || true; } | wc -l)
  [ "$users" = 2 ] && [ "$orders" = 1 ] && break
  sleep 0.2
done

echo "== starting ferry (config: examples/demo/ferry.hcl)"
bin/ferry run -config examples/demo/ferry.hcl &
pids+=($!)
for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:9901/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

cat <<MSG

ferry is routing on http://127.0.0.1:8080. Try, in another terminal:

  curl http://127.0.0.1:8080/api/user/42        # round robin over user-1 and user-2
  curl http://127.0.0.1:8080/api/order/7        # the order service
  curl http://127.0.0.1:8080/nowhere            # 404: no route
  curl -X POST 'http://127.0.0.1:9001/admin/health?ok=false'   # user-1 fails its Consul check:
  curl http://127.0.0.1:8080/api/user/42        # ... and only user-2 answers within ~1s
  curl -X POST 'http://127.0.0.1:9001/admin/health?ok=true'    # it comes back
  CONSUL_HTTP_ADDR=$HTTP_ADDR $CONSUL services deregister -id user-2   # gone from routing at once
  curl http://127.0.0.1:9901/readyz             # admin API; also /v1/upstreams, /v1/stats, /metrics
  curl -X POST http://127.0.0.1:9901/v1/upstreams/user/user-1/drain     # no new requests to user-1
  curl -X POST http://127.0.0.1:9901/v1/upstreams/user/user-1/undrain   # back in rotation

The live status page (traffic, latency, states, events): http://127.0.0.1:9901/

Press Ctrl-C to stop everything.
MSG
for i in 1 2 3 4; do curl -fsS http://127.0.0.1:8080/api/user/$i || true; done
wait

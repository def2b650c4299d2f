# The examples of SPEC §3 and §10, as written there.
listen = "127.0.0.1:8080"      # data plane; default "127.0.0.1:8080"
admin  = "127.0.0.1:9901"      # admin API; "" disables it; default "127.0.0.1:9901"
shutdown_timeout = "15s"       # drain time for in-flight requests on SIGTERM

consul {
  address     = "127.0.0.1:8500"  # default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500
  datacenter  = ""                # default: the agent's
  token       = ""                # default: $CONSUL_HTTP_TOKEN
  wait_time   = "30s"             # blocking query wait
  allow_stale = true
}

log {
  level      = "info"             # trace | debug | info | warn | error
  format     = "text"             # text | json
  access_log = "stdout"           # stdout | stderr | off | a file path
}

# Optional tuning for a Consul service; routes may name services that have no block.
service "user" {
  tag              = ""             # only instances carrying this tag
  balance          = "round_robin"  # round_robin | random | weighted | least_request
  connect_timeout  = "2s"
  response_timeout = "30s"          # until the upstream's response headers
  retries          = 2              # extra attempts, each on another instance

  health_check {                    # active checks: see §5
    path                = "/health"
    interval            = "5s"
    timeout             = "2s"
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  outlier {                         # passive checks: see §5
    consecutive_failures = 5
    base_ejection_time   = "30s"
  }
}

route "users" {
  path_prefix  = "/api/user"       # required, starts with "/"
  service      = "user"            # required: the Consul service name
  strip_prefix = false             # forward "/api/user/42" as "/42" when true
  host         = ""                # optional: match this Host header only
}

local_service {
  name    = "order"                 # Consul service name
  id      = ""                      # default: name-hostname-port
  address = ""                      # how others reach the app; default: the agent's node address
  port    = 9002
  tags    = ["v1"]
  meta    = { team = "orders" }
  check {
    http     = "http://127.0.0.1:9002/health"   # or tcp = "127.0.0.1:9002"
    interval = "5s"
    timeout  = "2s"
    deregister_critical_after = "1m"
  }
  deregister_delay = "2s"           # on shutdown: deregister, wait this long, then drain
}

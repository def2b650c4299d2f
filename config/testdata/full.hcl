# Every attribute and block of the language, none at its default.
listen           = "0.0.0.0:8081"
admin            = "127.0.0.1:9902"
shutdown_timeout = "20s"
trusted_proxies  = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]

limits {
  read_header_timeout = "5s"
  read_timeout        = "30s"
  idle_timeout        = "2m"
  write_idle_timeout  = "0s"
  max_header_bytes    = 32768
  max_header_count    = 50
  max_connections     = 0
}

consul {
  address     = "consul.internal:8500"
  datacenter  = "dc2"
  token       = "00000000-0000-0000-0000-000000000001"
  wait_time   = "1m"
  allow_stale = false
  use_cache   = true

  max_watch_connections = 32
  snapshot_file         = "/var/lib/ferry/instances.json"
  snapshot_ready        = false
}

log {
  level      = "debug"
  format     = "json"
  access_log = "/var/log/ferry/access.log"
}

service "user" {
  tag              = "v2"
  balance          = "least_request"
  connect_timeout  = "500ms"
  response_timeout = "1m30s"
  retries          = 3
  max_requests     = 200
  max_pending_requests = 50
  queue_timeout    = "2s"
  health           = "warning"
  panic_threshold  = 50

  failover {
    datacenters = ["dc3", "dc1"]
  }

  health_check {
    path                = "/ready?full=1"
    interval            = "10s"
    timeout             = "1s"
    healthy_threshold   = 3
    unhealthy_threshold = 4
  }

  outlier {
    consecutive_failures = 7
    base_ejection_time   = "45s"
  }
}

route "users" {
  path_prefix  = "/api/user/"
  service      = "user"
  strip_prefix = true
  host         = "API.Example.com"
  max_body_bytes = 1048576
}

route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}

local_service {
  name    = "order"
  id      = "order-1"
  address = "10.0.0.5"
  port    = 9002
  tags    = ["v1", "canary"]
  meta    = { team = "orders", tier = "backend" }

  check {
    http                      = "http://127.0.0.1:9002/health"
    interval                  = "3s"
    timeout                   = "1s"
    deregister_critical_after = "5m"
  }

  deregister_delay = "4s"
}

# Sidecar of order: registers it, and routes its outbound calls to the user
# service by name (the app calls http://127.0.0.1:8080/api/user/...).
listen = "127.0.0.1:8080"
admin  = "0.0.0.0:9901" # in the app's network namespace: Prometheus scrapes it there (not published on the host)

local_service {
  name    = "order"
  id      = "order-1"
  address = "order"
  port    = 9000
  meta    = { team = "orders" }
  check {
    http     = "http://order:9000/health"
    interval = "2s"
    timeout  = "1s"
  }
  deregister_delay = "2s"
}

service "user" {
  retries = 2
}

route "users" {
  path_prefix  = "/api/user"
  service      = "user"
  strip_prefix = false
}

# The demo's configuration: two Consul services behind one listener.
listen = "127.0.0.1:8080"
admin  = "127.0.0.1:9901"

consul {
  address = "127.0.0.1:18500" # the demo's own dev agent, not the standard 8500
}

service "user" {
  balance = "round_robin"
  retries = 2
}

route "users" {
  path_prefix  = "/api/user"
  service      = "user"
  strip_prefix = true
}

route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}

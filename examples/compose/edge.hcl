# The edge ferry: the entry point, routing by path to services by name.
listen = "0.0.0.0:8080"
admin  = "0.0.0.0:9901" # published on the host's loopback by docker-compose.yml

route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}

route "users" {
  path_prefix = "/api/user"
  service     = "user"
}

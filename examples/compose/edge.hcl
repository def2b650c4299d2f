# The edge ferry: the entry point, routing by path to services by name.
listen = "0.0.0.0:8080"
admin  = "127.0.0.1:9901"

route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}

route "users" {
  path_prefix = "/api/user"
  service     = "user"
}

admin = ""

route "orders" {
  path_prefix = "/api/order"
  service     = "order"
}

log {
  format = "json"
}

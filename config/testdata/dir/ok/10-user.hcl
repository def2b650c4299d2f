service "user" {
  retries = 1
}

route "users" {
  path_prefix = "/api/user"
  service     = "user"
}

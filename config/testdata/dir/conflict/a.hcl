listen = "127.0.0.1:8080"

consul {
  address = "127.0.0.1:8500"
}

service "user" {}

route "users" {
  path_prefix = "/api/user"
  service     = "user"
}

local_service {
  name = "a"
  port = 1
}

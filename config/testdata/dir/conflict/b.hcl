listen = "127.0.0.1:8081"

consul {
  address = "127.0.0.1:8501"
}

service "user" {}

route "users" {
  path_prefix = "/api/users"
  service     = "user"
}

route "users2" {
  path_prefix = "/api/user/"
  service     = "user"
}

local_service {
  name = "b"
  port = 2
}

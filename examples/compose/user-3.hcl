# Sidecar of user-3: registers it in Consul as an instance of "user". The user
# service calls nothing, so this sidecar routes nothing.
listen = "127.0.0.1:8080"
admin  = "0.0.0.0:9901" # in the app's network namespace: Prometheus scrapes it there (not published on the host)

local_service {
  name    = "user"
  id      = "user-3"
  address = "user-3"          # how the others reach it: its compose host name
  port    = 9000
  tags    = ["v1"]
  check {
    http     = "http://user-3:9000/health"
    interval = "2s"
    timeout  = "1s"
    deregister_critical_after = "1m"
  }
  deregister_delay = "2s"  # on shutdown: deregister, wait, then drain
}

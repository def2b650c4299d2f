# A TLS edge in front of the demo's services (make demo: its Consul agent on
# 127.0.0.1:18500 and the user and order backends). Certificates cannot be
# committed: `make tls-demo-certs` writes the ones named below to bin/tls-demo/
# (paths are relative to this file). Then, beside `make demo`:
#
#   make build tls-demo-certs
#   bin/ferry validate -config examples/tls-edge/edge.hcl
#   bin/ferry run -config examples/tls-edge/edge.hcl
#   curl --cacert bin/tls-demo/ca.pem --http2 https://localhost:8443/api/user/1
#   curl --cacert bin/tls-demo/ca.pem --http1.1 https://localhost:8443/api/order/1
#   curl -si http://localhost:8081/api/user/1 | head -3    # 308 to https://localhost:8443/…
#   curl -s http://127.0.0.1:9902/v1/listeners             # certificates, names, expiry
admin = "127.0.0.1:9902" # the demo's own ferry has 9901

consul {
  address = "127.0.0.1:18500"
}

# HTTPS with HTTP/2 by ALPN; the certificate is chosen by SNI (shop.crt for
# shop.example, www.shop.example and localhost; apps.crt for *.apps.example;
# shop.crt, the first, for anything else). Edit or renew the files and ferry
# serves them within 5 s (or at SIGHUP), without dropping connections.
listener "public" {
  address = "127.0.0.1:8443"
  http2   = true
  tls {
    certificate {
      cert_file = "../../bin/tls-demo/shop.crt"
      key_file  = "../../bin/tls-demo/shop.key"
    }
    certificate {
      cert_file = "../../bin/tls-demo/apps.crt"
      key_file  = "../../bin/tls-demo/apps.key"
    }
    min_version = "1.2"
  }
}

# Internal clients with a certificate from the demo CA only (mutual TLS):
#   curl --cacert bin/tls-demo/ca.pem --cert bin/tls-demo/client.crt \
#     --key bin/tls-demo/client.key https://localhost:8444/api/user/1
listener "internal" {
  address = "127.0.0.1:8444"
  http2   = true
  tls {
    certificate {
      cert_file = "../../bin/tls-demo/shop.crt"
      key_file  = "../../bin/tls-demo/shop.key"
    }
    min_version    = "1.3"
    client_ca_file = "../../bin/tls-demo/ca.pem"
  }
}

# Plain HTTP answers 308 to the same URL over HTTPS.
listener "http" {
  address        = "127.0.0.1:8081"
  redirect_https = "https://{host}:8443"
}

service "user" {
  retries = 2
}

route "users" {
  path_prefix  = "/api/user"
  service      = "user"
  strip_prefix = true
  headers {
    # HSTS: browsers keep to HTTPS for two years.
    response_set = { "Strict-Transport-Security" = "max-age=63072000" }
  }
}

route "orders" {
  path_prefix = "/api/order"
  service     = "order"
  headers {
    response_set = { "Strict-Transport-Security" = "max-age=63072000" }
  }
}

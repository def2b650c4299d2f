# The image's default configuration (/etc/ferry/ferry.hcl). Inside a container
# "all interfaces" is the container's own network, so both listeners accept
# connections from outside it; publish them with -p. Consul's address comes
# from $CONSUL_HTTP_ADDR (default 127.0.0.1:8500, which inside a container is
# the container itself: set it). No routes: add yours as another file beside
# this one (/etc/ferry is a directory of .hcl files, merged), e.g.
#   docker run -p 8080:8080 -p 127.0.0.1:9901:9901 \
#     -e CONSUL_HTTP_ADDR=consul.internal:8500 \
#     -v "$PWD/routes.hcl:/etc/ferry/routes.hcl:ro" ferry:dev
# Mounting a directory of your own over /etc/ferry replaces this file: your
# configuration must then listen on 0.0.0.0 itself.
listen = "0.0.0.0:8080"

# The admin API (status page, /v1/*, /metrics, POST /v1/reload) on every
# interface of the container: publish it on the host's loopback only
# (-p 127.0.0.1:9901:9901), never on a public address.
admin = "0.0.0.0:9901"

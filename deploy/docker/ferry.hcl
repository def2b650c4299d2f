# The image's default configuration (/etc/ferry/ferry.hcl). Inside a container
# "all interfaces" is the container's own network, so both listeners accept
# connections from outside it; publish them with -p. Consul's address comes
# from $CONSUL_HTTP_ADDR (default 127.0.0.1:8500, which inside a container is
# the container itself: set it). No routes: mount your own configuration
# over /etc/ferry (a directory of .hcl files, merged), e.g.
#   docker run -p 8080:8080 -e CONSUL_HTTP_ADDR=consul.internal:8500 \
#     -v "$PWD/ferry:/etc/ferry:ro" ferry:dev
listen = "0.0.0.0:8080"

# The admin API (status page, /v1/*, /metrics, POST /v1/reload) on every
# interface of the container: publish it on the host's loopback only
# (-p 127.0.0.1:9901:9901), never on a public address.
admin = "0.0.0.0:9901"

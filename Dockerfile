# ferry's image from source, as users build it (pulls golang:1.26-bookworm):
# a static binary on an empty base, running as a non-root user.
#   docker build -t ferry:dev .     (docker-compose up --build does the same)
#   docker run --rm ferry:dev version
# `make image` builds the same image offline from binaries built on the host
# (Dockerfile.prebuilt); README: "Run beside your services in docker-compose".
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ferry ./cmd/ferry \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/demo-backend ./examples/backend \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/probe ./deploy/docker/probe \
 && mkdir -p /out/etc/ferry && cp deploy/docker/ferry.hcl /out/etc/ferry/ferry.hcl \
 && echo 'ferry:x:65532:65532:ferry:/nonexistent:/sbin/nologin' > /out/passwd \
 && echo 'ferry:x:65532:' > /out/group

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build /out/ferry /out/demo-backend /out/probe /usr/local/bin/
COPY --from=build /out/etc/ferry /etc/ferry
# Smoke test: the binary runs on this base.
RUN ["/usr/local/bin/ferry", "version"]
USER 65532:65532
EXPOSE 8080 9901
# No shell on scratch: the health check is probe, a static HTTP GET.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/probe", "http://127.0.0.1:9901/healthz"]
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["run", "-config", "/etc/ferry"]

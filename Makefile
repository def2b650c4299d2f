# ferry's build, test and demo entry points. `make demo` and `make test` are the
# quick start; both build what they need (the Consul agent included) first.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# A consul already on PATH is used as it is; otherwise bin/consul is built from
# the e2e/consul tools module (Consul v1.13.9, about 4 minutes on 2 cores).
CONSUL := $(shell command -v consul 2>/dev/null || echo bin/consul)

.PHONY: all build consul demo tls-demo-certs test vet unit e2e fuzz fuzz-short image image-files image-source compose-test clean bench bench-tools bench-go bench-scale profile h2spec

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ferry ./cmd/ferry
	$(GO) build -trimpath -o bin/demo-backend ./examples/backend

consul: $(CONSUL)

# Static (CGO_ENABLED=0), so that the container image can take it as it is:
# one Consul build serves the tests, the demo and make image.
bin/consul: e2e/consul/go.mod e2e/consul/go.sum
	cd e2e/consul && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o ../../bin/consul github.com/hashicorp/consul

demo: build consul
	CONSUL=$(CONSUL) ./examples/demo/run.sh

# The certificates examples/tls-edge/edge.hcl names (they cannot be
# committed): a demo CA and ECDSA P-256 leaves in bin/tls-demo/, 90 days.
tls-demo-certs:
	$(GO) run ./examples/tls-edge/gencerts -dir bin/tls-demo

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: consul
	CONSUL_BIN=$(abspath $(CONSUL)) $(GO) test -race -count=1 -timeout 15m ./e2e/...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=10s ./config/

# Every fuzz target for 20,000 inputs (seeds in each package's testdata/fuzz/);
# part of make test. A failing input is written to testdata/fuzz/ to keep.
FUZZ_TARGETS := ./config/:FuzzParse ./proxy/wire/:FuzzCanonicalPath ./proxy/route/:FuzzMatch ./proxy/wire/:FuzzTracker ./proxy/wire/:FuzzParseHead ./proxy/wire/:FuzzParseResponse ./proxy/filter/jwt/:FuzzToken ./proxy/filter/cache/:FuzzDecode
# A count, not a duration: with a duration, Go's fuzzer can report its own
# deadline ("context deadline exceeded") as a failure when time runs out
# mid-minimisation, which would make `make test` flaky.
FUZZTIME ?= 20000x
fuzz-short:
	set -e; for t in $(FUZZ_TARGETS); do \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}$$" -fuzztime=$(FUZZTIME) "$${t%%:*}"; \
	done

test: vet consul fuzz-short
	CONSUL_BIN=$(abspath $(CONSUL)) $(GO) test -race -count=1 -timeout 20m ./...
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory compose-test; \
	else echo "compose test skipped: no Docker engine answers (docker info); make compose-test runs it"; fi

# The reference docker-compose deployment run for real under faults (~5 min;
# e2e/compose). Needs a Docker engine and Compose; builds the images first.
compose-test: image
	FERRY_COMPOSE=1 $(GO) test -count=1 -v -timeout 12m -run 'TestImage|TestComposeTopology|TestOfflineOverride' ./e2e/compose/

# The container images, built offline: static binaries built here, packed onto
# scratch by Dockerfile.prebuilt (ferry:dev, and ferry-consul:dev for the compose
# example). ./Dockerfile builds ferry:dev from source instead (pulls golang).
IMAGE_DIR := bin/image
image-files:
	mkdir -p $(IMAGE_DIR)/consul-data
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_DIR)/ferry ./cmd/ferry
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(IMAGE_DIR)/demo-backend ./examples/backend
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(IMAGE_DIR)/probe ./deploy/docker/probe
	cp deploy/docker/ferry.hcl $(IMAGE_DIR)/ferry.hcl
	cp /etc/ssl/certs/ca-certificates.crt $(IMAGE_DIR)/ca-certificates.crt
	printf 'ferry:x:65532:65532:ferry:/nonexistent:/sbin/nologin\n' > $(IMAGE_DIR)/passwd
	printf 'ferry:x:65532:\n' > $(IMAGE_DIR)/group

# Consul for the image: bin/consul when it is static (it is built so; one built
# before that was not), else a static build of its own.
$(IMAGE_DIR)/consul: bin/consul
	mkdir -p $(IMAGE_DIR)
	if $(GO) version -m bin/consul | grep -q 'CGO_ENABLED=0'; then cp bin/consul $@; \
	else cd e2e/consul && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o ../../$@ github.com/hashicorp/consul; fi

# The images these tags named before are removed once the new ones have the
# tags, unless something still uses or tags them: each build would otherwise
# leave an untagged image behind. Nothing else of the engine is touched.
image: image-files $(IMAGE_DIR)/consul
	@old="$$(docker image ls -q ferry:dev) $$(docker image ls -q ferry-consul:dev)"; \
	docker build -q -f Dockerfile.prebuilt --target ferry -t ferry:dev $(IMAGE_DIR) && \
	docker build -q -f Dockerfile.prebuilt --target consul -t ferry-consul:dev $(IMAGE_DIR) || exit 1; \
	for id in $$old; do \
		if [ -z "$$(docker image inspect -f '{{join .RepoTags ""}}' $$id 2>/dev/null)" ]; then \
			docker image rm $$id >/dev/null 2>&1 && echo "removed the previous image $$id" || true; \
		fi; \
	done
	docker run --rm ferry:dev version
	@docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' ferry:dev

# The image from source with ./Dockerfile, as users build it (needs a registry).
image-source:
	docker build --build-arg VERSION=$(VERSION) -t ferry:dev .

# Benchmarks (none of them is part of make test): docs/benchmarks.md says what
# they measure and how to read them. make bench takes about 5 minutes.
BENCH_FLAGS ?= -rounds 3 -d 5s

bench-tools:
	bench/install-tools.sh

bench: build consul bench-tools
	set -o pipefail; $(GO) run ./bench/cmd/ferrybench -root . -svg docs/benchmarks.svg $(BENCH_FLAGS) | tee bin/bench-results.md

# A CPU profile of ferry (its pprof endpoint) under wrk: bin/ferry-cpu.pprof.
profile: build consul bench-tools
	$(GO) run ./bench/cmd/ferrybench -root . -profile bin/ferry-cpu.pprof -profile-seconds 10
	set -o pipefail; $(GO) tool pprof -top -nodecount=40 bin/ferry-cpu.pprof | tee bin/ferry-cpu-top.txt

# h2spec against ferry's h2 listeners, TLS and h2c (bench/h2spec.sh; the
# score and why each failure is Go's server: docs/benchmarks.md, issue 15).
h2spec: build consul
	CONSUL=$(CONSUL) bench/h2spec.sh

# The hot path's Go benchmarks.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./proxy/...

# Discovery at scale: 1,000 services × 3 instances in Consul.
bench-scale: build consul
	set -o pipefail; $(GO) run ./bench/cmd/ferryscale -root . | tee bin/bench-scale-results.md

clean:
	rm -rf bin

# ferry's build, test and demo entry points. `make demo` and `make test` are the
# quick start; both build what they need (the Consul agent included) first.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# A consul already on PATH is used as it is; otherwise bin/consul is built from
# the e2e/consul tools module (Consul v1.13.9, about 4 minutes on 2 cores).
CONSUL := $(shell command -v consul 2>/dev/null || echo bin/consul)

.PHONY: all build consul demo test vet unit e2e fuzz fuzz-short image clean bench bench-tools bench-go bench-scale profile

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ferry ./cmd/ferry
	$(GO) build -trimpath -o bin/demo-backend ./examples/backend

consul: $(CONSUL)

bin/consul: e2e/consul/go.mod e2e/consul/go.sum
	cd e2e/consul && $(GO) build -trimpath -o ../../bin/consul github.com/hashicorp/consul

demo: build consul
	CONSUL=$(CONSUL) ./examples/demo/run.sh

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
FUZZ_TARGETS := ./config/:FuzzParse ./proxy/:FuzzCanonicalPath ./proxy/:FuzzMatch ./proxy/:FuzzTracker ./proxy/:FuzzParseHead ./proxy/:FuzzParseResponse
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

# The container image (needs a Docker engine; none runs on the CI machines).
image:
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

# The hot path's Go benchmarks.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./proxy/

# Discovery at scale: 1,000 services × 3 instances in Consul.
bench-scale: build consul
	set -o pipefail; $(GO) run ./bench/cmd/ferryscale -root . | tee bin/bench-scale-results.md

clean:
	rm -rf bin

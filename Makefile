# ferry's build, test and demo entry points. `make demo` and `make test` are the
# quick start; both build what they need (the Consul agent included) first.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# A consul already on PATH is used as it is; otherwise bin/consul is built from
# the e2e/consul tools module (Consul v1.13.9, about 4 minutes on 2 cores).
CONSUL := $(shell command -v consul 2>/dev/null || echo bin/consul)

.PHONY: all build consul demo test vet unit e2e fuzz clean

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

test: vet consul
	CONSUL_BIN=$(abspath $(CONSUL)) $(GO) test -race -count=1 -timeout 20m ./...

clean:
	rm -rf bin

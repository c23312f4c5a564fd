# Flick: `make run` starts the embedded platform with the examples; `make test` runs every test.
GO        ?= go
BIN       := bin/flick
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/flickdev/flick/internal/cli.Version=$(VERSION)
DATA_DIR  ?= $(HOME)/.flick
LISTEN    ?= 127.0.0.1:8080
API       ?= 127.0.0.1:8081

.PHONY: build deps kube-bins pebble crds examples run test unit e2e vet bench bench-queue clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/flick

# Python and Node for their runtimes, from Debian's packages when missing.
deps:
	@scripts/deps.sh

# A real etcd, kube-apiserver, kube-controller-manager and kube-scheduler for the Kubernetes
# tests, built from the Go module proxy once (about 10 minutes) and cached in ~/.cache/flick.
kube-bins:
	@scripts/kube-bins.sh >/dev/null

# Let's Encrypt's pebble (a real ACME server) for the certificate tests, built once from the
# Go module proxy and cached in ~/.cache/flick/pebble.
pebble:
	@scripts/pebble.sh >/dev/null

# The CRDs in config/crd, generated from the Go types (internal/kube/apis wraps pkg/apis).
crds:
	@scripts/crds.sh

# Examples that need compiling before they are deployed (the binary function, the gRPC service).
examples:
	$(GO) build -o examples/hello-binary/bin/hello ./examples/hello-binary
	$(GO) build -o examples/grpc-greeter/bin/greeter ./examples/grpc-greeter/server

run: deps build examples
	@scripts/run.sh $(BIN) "$(DATA_DIR)" $(LISTEN) $(API)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@scripts/crds.sh --check

unit:
	FLICK_KUBE_BIN=$$(scripts/kube-bins.sh 2>/dev/null | tail -1) FLICK_PEBBLE=$$(scripts/pebble.sh 2>/dev/null | tail -1) $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/e2e)

e2e: build examples
	FLICK_BIN=$(CURDIR)/$(BIN) FLICK_KUBE_BIN=$$(scripts/kube-bins.sh 2>/dev/null | tail -1) FLICK_PEBBLE=$$(scripts/pebble.sh 2>/dev/null | tail -1) $(GO) test -count=1 -timeout 15m ./test/e2e/...

test: deps kube-bins pebble vet unit e2e

bench: build examples
	$(GO) run ./bench/coldstart -flick $(BIN)
	$(GO) run ./bench/sandbox
	$(GO) run ./bench/eventlog
	$(GO) run ./bench/eventing -flick $(BIN)
	$(GO) run ./bench/queues -flick $(BIN)
	$(GO) run ./bench/split -flick $(BIN)
	$(GO) run ./bench/burst -flick $(BIN)
	$(GO) run ./bench/datapath -flick $(BIN)
	$(GO) run ./bench/grpc -flick $(BIN)

# The data path benchmark with Knative's queue-proxy beside Flick (builds it once, cached).
bench-queue:
	bench/datapath/queue.sh

clean:
	rm -rf bin examples/hello-binary/bin examples/grpc-greeter/bin

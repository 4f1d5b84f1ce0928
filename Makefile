# Every routine command; CI runs `make test` (through .ci/run).
GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
BENCHCOUNT ?= 3

GOLANGCI_LINT_VERSION ?= v2.15.0
GOFUMPT_VERSION       ?= v0.12.0

# Fuzz targets as package:target pairs; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := ./pkg/events:FuzzDecode ./pkg/events:FuzzDecodeBatch

.PHONY: all run test attack vet lint fmt bench fuzz tools build clean

all: lint test

## run: the whole pipeline in one process (Ctrl-C stops it)
run:
	$(GO) run ./cmd/jetmon up

## build: the binaries into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

## test: vet, then every test with the race detector
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...

## attack: the adversarial suite alone (it also runs in `make test`): hostile input against the real `jetmon up`
attack:
	$(GO) test -count=1 -timeout 15m -run 'TestAttack|TestUpEndToEnd' -v ./cmd/jetmon/ ./internal/httpd/ ./internal/natsauth/

vet:
	$(GO) vet ./...

## lint: gofumpt and golangci-lint (installed on first use)
lint: tools vet
	@out=$$($(GOBIN)/gofumpt -l .); if [ -n "$$out" ]; then echo "gofumpt would reformat:"; echo "$$out"; exit 1; fi
	$(GOBIN)/golangci-lint run ./...

## fmt: rewrite files with gofumpt
fmt: tools
	$(GOBIN)/gofumpt -w .

## bench: every benchmark BENCHCOUNT times, then median ratios against the baselines of the same run
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./... | tee bench.out
	@echo
	$(GO) run ./internal/tools/benchratio bench.out

## fuzz: each fuzz target for FUZZTIME
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

tools:
	@test -x $(GOBIN)/golangci-lint || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@test -x $(GOBIN)/gofumpt || $(GO) install mvdan.cc/gofumpt@$(GOFUMPT_VERSION)

clean:
	rm -rf bin bench.out

# Every routine command; CI runs `make test` (through .ci/run).
GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
BENCHCOUNT ?= 3

GOLANGCI_LINT_VERSION ?= v2.15.0
GOFUMPT_VERSION       ?= v0.12.0

# Fuzz targets as package:target pairs; `make fuzz` runs each for FUZZTIME.
FUZZ_TARGETS := ./pkg/events:FuzzDecode ./pkg/events:FuzzDecodeBatch ./pkg/alerting:FuzzParse ./pkg/otlp:FuzzDecodeJSON ./pkg/otlp:FuzzDecodeProto ./pkg/trace:FuzzDecodeBuild ./pkg/history:FuzzParseTime ./pkg/history:FuzzWindowsQuery

.PHONY: all run test attack vet lint fmt bench bench-peers fuzz tools build clean stress images compose-secrets compose-up compose-down compose-test console-screenshots

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
	cd bench/peers && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 20m ./...

## stress: the suite STRESS times (default 10) with -race beside STRESS_HOGS busy-loop processes (default 2); lists every failed test by run and package, fails if any run failed
STRESS       ?= 10
STRESS_HOGS  ?= 2
STRESS_PKGS  ?= ./...
stress:
	@set -u; logs=$$(mktemp -d "$${TMPDIR:-/tmp}/jetmon-stress.XXXXXX"); hogs=""; \
	trap 'for p in $$hogs; do kill $$p 2>/dev/null; done' EXIT INT TERM; \
	for i in $$(seq $(STRESS_HOGS)); do yes >/dev/null & hogs="$$hogs $$!"; done; \
	echo "== stress: $(STRESS) runs of $(STRESS_PKGS) with -race beside $(STRESS_HOGS) CPU hogs; logs in $$logs"; \
	failed=0; \
	for run in $$(seq $(STRESS)); do \
		log=$$logs/run-$$run.log; \
		if $(GO) test -race -count=1 -timeout 20m $(STRESS_PKGS) >$$log 2>&1; then \
			echo "run $$run: ok"; \
		else \
			failed=$$((failed+1)); echo "run $$run: FAILED ($$log)"; \
			awk ' \
				/^[ \t]*--- FAIL: / { t=$$0; sub(/^[ \t]*--- FAIL: /, "", t); sub(/ \(.*$$/, "", t); tests[++n]=t; next } \
				/^FAIL\t/ { split($$0, f, "\t"); if (n == 0) print f[2] " (no test named: build failure, panic or timeout; see the log)"; \
					for (i = 1; i <= n; i++) print f[2] " " tests[i]; n=0; next } \
				/^ok[ \t]/ { n=0 }' $$log | tee -a $$logs/failures | sed "s/^/  run $$run: /"; \
		fi; \
	done; \
	echo "== stress: $$failed of $(STRESS) runs failed"; \
	if [ -s $$logs/failures ]; then echo "== failures (runs, package, test):"; sort $$logs/failures | uniq -c | sort -rn; fi; \
	test $$failed -eq 0

## attack: the adversarial suite alone (it also runs in `make test`): hostile input against the real `jetmon up`
attack:
	$(GO) test -count=1 -timeout 15m -run 'TestAttack|TestUpEndToEnd' -v ./cmd/jetmon/ ./internal/httpd/ ./internal/natsauth/

vet:
	$(GO) vet -tags compose ./...

IMAGES := jetmon producer aggregator alertmanager nats-server
COMPOSE ?= docker-compose

## images: one image per program FROM scratch (static binaries built here, non-root, no shell)
images:
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '-s -w' -o bin/linux/ ./cmd/... ./internal/tools/healthcheck ./internal/tools/webhooksink
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '-s -w' -o bin/linux/nats-server github.com/nats-io/nats-server/v2
	@set -e; for i in $(IMAGES) webhook-sink; do \
		bin=$$i; [ $$i = webhook-sink ] && bin=webhooksink; \
		docker build -q -f deploy/docker/Dockerfile --build-arg BIN=$$bin -t jetmon/$$i:dev . >/dev/null; \
	done
	@docker images --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' 'jetmon/*'

## compose-secrets: the NATS users' passwords, their server config and the HTTP tokens (kept if present)
compose-secrets:
	@mkdir -p deploy/compose/secrets && chmod 700 deploy/compose/secrets
	$(GO) run ./cmd/jetmon nats-config --secrets deploy/compose/secrets --create --out deploy/compose/secrets/auth.conf
	@for f in http.token api.token; do \
		test -s deploy/compose/secrets/$$f || od -An -N24 -tx1 /dev/urandom | tr -d ' \n' > deploy/compose/secrets/$$f; \
	done
	@# Readable by the containers' user; the 0700 directory keeps other users out.
	@chmod 644 deploy/compose/secrets/*

## compose-up: the whole deployment on a three-node NATS cluster, three aggregators
compose-up: images compose-secrets
	$(COMPOSE) up -d --scale aggregator=3

compose-down:
	$(COMPOSE) down -v

## compose-test: build, run and fault-test the compose deployment (needs Docker)
compose-test: images compose-secrets
	$(GO) test -tags compose -count=1 -timeout 30m -v ./deploy/compose/

## lint: gofumpt and golangci-lint (installed on first use)
lint: tools vet
	@out=$$($(GOBIN)/gofumpt -l .); if [ -n "$$out" ]; then echo "gofumpt would reformat:"; echo "$$out"; exit 1; fi
	$(GOBIN)/golangci-lint run --build-tags compose ./...
	cd bench/peers && $(GOBIN)/golangci-lint run --config ../../.golangci.yml ./...

## fmt: rewrite files with gofumpt
fmt: tools
	$(GOBIN)/gofumpt -w .

## bench: every benchmark BENCHCOUNT times, then median ratios against the baselines of the same run
## (BENCHCOUNT whole passes rather than -count, so that each baseline runs next to what it is compared with)
bench:
	@rm -f bench.out; for i in $$(seq $(BENCHCOUNT)); do \
		$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 1 ./... | tee -a bench.out; \
	done
	@echo
	$(GO) run ./internal/tools/benchratio bench.out

## console-screenshots: the console's browser tests (headless Chromium), writing docs/console/*.png
console-screenshots:
	JETMON_SCREENSHOTS=1 $(GO) test -count=1 -run '^TestBrowser(Traces)?$$' ./pkg/console

## bench-peers: jetmon against raw nats.go and Watermill on a nats-server process, PEERS_RUNS passes (docs/benchmarks.md)
PEERS_RUNS  ?= 3
PEERS_FLAGS ?=
bench-peers:
	cd bench/peers && $(GO) run . -runs $(PEERS_RUNS) -md ../../docs/benchmarks-peers.md -svg ../../docs/benchmarks-peers.svg $(PEERS_FLAGS)

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

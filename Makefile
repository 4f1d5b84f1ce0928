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

.PHONY: all run test attack vet lint fmt bench fuzz tools build clean stress

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
	$(GO) vet ./...

## lint: gofumpt and golangci-lint (installed on first use)
lint: tools vet
	@out=$$($(GOBIN)/gofumpt -l .); if [ -n "$$out" ]; then echo "gofumpt would reformat:"; echo "$$out"; exit 1; fi
	$(GOBIN)/golangci-lint run ./...

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

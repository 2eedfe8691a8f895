# nixbucket — see README.md. `make demo` and `make test` work on a fresh Debian machine with Go.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin/nixbucket
export NIXBUCKET_TOOLS ?= $(HOME)/.cache/nixbucket/bin
export CGO_ENABLED := 0
BENCH ?= all

.PHONY: build quick test demo bench check race setup servers demo-setup fuzz clean

build: ## the static binary in bin/
	@test -e $(BIN) || echo "building $(BIN) for the first time: go downloads ~100 MB of modules (go: downloading …), then compiles them (a few minutes, silent)"
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nixbucket

setup: ## Nix (Debian's nix-bin) configured, and what the tests use (xz, zstd, gcc, registry, skopeo, chromium…)
	@bash scripts/setup.sh test

servers: ## the real S3 servers (versitygw, MinIO), built once into $(NIXBUCKET_TOOLS)
	@sh scripts/install-s3-servers.sh versitygw minio

demo-setup: ## what the demo alone uses: Nix configured, curl, and one S3 server (versitygw)
	@bash scripts/setup.sh demo
	@sh scripts/install-s3-servers.sh versitygw

quick: ## the fast tier: unit tests, parsers and fuzz seeds; no servers, Nix or browser
	$(GO) test -short ./...

test: setup servers build ## the whole suite: unit, fuzz seeds, real Nix, real S3 servers
	$(GO) vet ./...
	NIXBUCKET_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 45m ./...

demo: demo-setup build ## the main job end to end on a sample closure
	@bash scripts/demo.sh

# BENCH=net: only the network mode (nix copy --to http:// vs push, through a
# latency proxy at NIXBUCKET_BENCH_RTT=0,20,80 ms; at 80 ms Nix's dag alone
# takes ~14 min); BENCH=loopback: only the loopback mode. See scripts/bench.sh.
bench: setup servers build ## nixbucket against nix on the same paths, as ratios (loopback, then network at 0, 20, 80 ms: about an hour; BENCH=net|loopback)
	@BENCH=$(BENCH) bash scripts/bench.sh

check: ## gofmt, go vet (also of the bench-tagged files), staticcheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags bench ./internal/bench/ ./cmd/nixbucket/
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# The packages with concurrency, under the race detector (it needs cgo and gcc).
RACE_PKGS := ./s3cache/... ./push/... ./lock/... ./gc/... ./serve/... ./compression/... ./httpcache/... ./resign/... ./remove/... ./queue/... ./metrics/... ./watch/...

race: setup servers build ## the concurrent packages under -race
	NIXBUCKET_BIN=$(CURDIR)/$(BIN) CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m $(RACE_PKGS)

fuzz: ## a short fuzzing run of every parser
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s $$p || exit 1; done; done

clean:
	rm -rf bin

# The two commands of this repo: `cargo run --release` serves; `make test` checks everything.
#
# `make test` works on a fresh machine with only the language toolchains installed: it puts
# every other tool it needs into the git-ignored .tools/ (pinned versions, installed once;
# a stamp file per tool and version makes reruns no-ops), then runs, in order:
#   cargo fmt --check, cargo clippy (-D warnings), cargo test, buf lint on proto/,
#   the check that the committed client stubs match proto/,
#   the grpcurl smoke test against the debug binary (tests/smoke/grpcurl.sh),
#   and the Go, Python and Java client suites against one running server.
# `make generate` regenerates the committed Go and Python stubs from proto/.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
MAKEFLAGS += --no-print-directory

# Pinned tool versions (Go module proxy, PyPI).
BUF_VERSION          := v1.75.0
GRPCURL_VERSION      := v1.9.4
HEALTH_PROBE_VERSION := v0.4.62
PROTOC_GEN_GO        := v1.36.12
PROTOC_GEN_GO_GRPC   := v1.6.2

TOOLS  := $(CURDIR)/.tools
BIN    := $(TOOLS)/bin
STAMPS := $(TOOLS)/stamps
VENV   := $(TOOLS)/venv
PYTHON := $(VENV)/bin/python
export PATH := $(BIN):$(PATH)
export AI_SERVICE_BIN := $(CURDIR)/target/debug/ai-service

GO_TOOLS := \
	$(STAMPS)/buf@$(BUF_VERSION) \
	$(STAMPS)/grpcurl@$(GRPCURL_VERSION) \
	$(STAMPS)/grpc-health-probe@$(HEALTH_PROBE_VERSION) \
	$(STAMPS)/protoc-gen-go@$(PROTOC_GEN_GO) \
	$(STAMPS)/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC)

.PHONY: test tools fmt clippy cargo-test build lint smoke generate check-generated

test: tools fmt clippy cargo-test lint smoke

tools: $(GO_TOOLS)

# One rule per Go tool: `go install module/cmd@version` into .tools/bin.
$(STAMPS)/buf@%:
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$*
	@mkdir -p $(STAMPS) && touch $@
$(STAMPS)/grpcurl@%:
	GOBIN=$(BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$*
	@mkdir -p $(STAMPS) && touch $@
$(STAMPS)/grpc-health-probe@%:
	GOBIN=$(BIN) go install github.com/grpc-ecosystem/grpc-health-probe@$*
	@mkdir -p $(STAMPS) && touch $@
$(STAMPS)/protoc-gen-go@%:
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$*
	@mkdir -p $(STAMPS) && touch $@
$(STAMPS)/protoc-gen-go-grpc@%:
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$*
	@mkdir -p $(STAMPS) && touch $@

fmt:
	cargo fmt --check

clippy:
	cargo clippy --all-targets -- -D warnings

cargo-test:
	cargo test

build:
	cargo build

lint: $(STAMPS)/buf@$(BUF_VERSION)
	cd proto && buf lint
	@echo "buf lint: proto/ is clean"

smoke: build $(STAMPS)/grpcurl@$(GRPCURL_VERSION) $(STAMPS)/grpc-health-probe@$(HEALTH_PROBE_VERSION)
	tests/smoke/grpcurl.sh

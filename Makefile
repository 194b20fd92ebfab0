# The two commands of this repo: `cargo run --release` serves; `make test` checks everything.
#
# `make test` works on a fresh machine with only the language toolchains installed: it puts
# every other tool it needs into the git-ignored .tools/ (pinned versions, installed once;
# a stamp file per tool and version makes reruns no-ops), then runs, in order:
#   cargo fmt --check, cargo clippy (-D warnings), cargo test, buf lint on proto/,
#   the check that the committed client stubs match proto/,
#   the grpcurl smoke test against the debug binary (tests/smoke/grpcurl.sh),
#   the Go, Python, Java and TypeScript client suites against running gateways,
#   the operator console in Chromium (tests/console, Playwright with Debian's browser),
#   the official openai and anthropic SDKs against the HTTP front doors (tests/sdk),
#   the deploy checks (deploy/check.sh: Dockerfile, manifests, Helm chart, smoke run),
#   a benchmark smoke run, and a short fuzz run whose build starts in the background at idle
#   priority right after the tools.
# `make generate` regenerates the committed Go, Python and TypeScript stubs from proto/.

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
TEST_VENV   := $(TOOLS)/venv-test
TEST_PYTHON := $(TEST_VENV)/bin/python
SDK_VENV    := $(TOOLS)/venv-sdk
SDK_PYTHON  := $(SDK_VENV)/bin/python
STORES_VENV := $(TOOLS)/venv-stores
# The TypeScript client's npm packages, and npm's cache (so a rerun needs no network).
TS_CLIENT  := clients/typescript
TS_MODULES := $(TS_CLIENT)/node_modules/.installed
NPM_CACHE  := $(TOOLS)/npm-cache
CONSOLE_VENV := $(TOOLS)/venv-console
# The S3-compatible server of the backup tests (tests/stores/backup.rs).
export AI_SERVICE_MOTO := $(STORES_VENV)/bin/moto_server
export PATH := $(BIN):$(PATH)
export AI_SERVICE_BIN := $(CURDIR)/target/debug/ai-service

GO_TOOLS := \
	$(STAMPS)/buf@$(BUF_VERSION) \
	$(STAMPS)/grpcurl@$(GRPCURL_VERSION) \
	$(STAMPS)/grpc-health-probe@$(HEALTH_PROBE_VERSION) \
	$(STAMPS)/protoc-gen-go@$(PROTOC_GEN_GO) \
	$(STAMPS)/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC)

.PHONY: test tools redis-server bao fmt clippy cargo-test build lint smoke generate check-generated \
	clients client-go client-python client-java client-typescript sdk fuzz fuzz-short fuzz-build-idle soak \
	chromium console-test console-screenshots

test: tools fuzz-build-idle fmt clippy cargo-test lint check-generated smoke clients sdk console-test
	bash deploy/check.sh
	$(MAKE) bench-smoke
	$(MAKE) fuzz-short

tools: $(GO_TOOLS) $(STAMPS)/venv $(STAMPS)/venv-test $(STAMPS)/venv-sdk $(STAMPS)/venv-stores \
	$(STAMPS)/venv-console redis-server chromium $(BIN)/bao $(TS_MODULES)

# The cache and rate-limit tests start (and stop) their own redis-server on 127.0.0.1, from
# Debian's package.
redis-server:
	@command -v redis-server >/dev/null || test -x /usr/bin/redis-server || { \
	  S=; [ "$$(id -u)" = 0 ] || S=sudo; \
	  $$S apt-get update -qq && $$S apt-get install -y -qq redis-server >/dev/null; }

# The console's browser test drives Debian's Chromium (Playwright's own browser download is
# not reachable from CI); skipped when a chromium is already installed.
chromium:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
	  S=; [ "$$(id -u)" = 0 ] || S=sudo; \
	  $$S apt-get update -qq && $$S apt-get install -y -qq chromium >/dev/null; }

# OpenBao (Vault-API compatible) for tests/stores/vault.rs: no registry serves a server
# binary, so the workspace ships one xz-packed (../shared/bin/README.md); unpacked once and
# checked against its known sha256.
BAO_XZ ?= $(firstword $(wildcard $(CURDIR)/../shared/bin/bao.xz /work/shared/bin/bao.xz))
BAO_SHA256 := 15955fd0f5675d915f956630b7c790f91f964b320b11aa12b88caaa1f5f2df9b
export AI_SERVICE_BAO := $(BIN)/bao

bao: $(BIN)/bao

$(BIN)/bao:
	@test -n "$(BAO_XZ)" || { echo "bao.xz not found: set BAO_XZ=/path/to/bao.xz"; exit 1; }
	@mkdir -p $(BIN)
	xz -dc $(BAO_XZ) > $@.tmp
	echo "$(BAO_SHA256)  $@.tmp" | sha256sum -c --quiet -
	chmod +x $@.tmp && mv $@.tmp $@

# Two Python venvs: .tools/venv holds the pinned generator (grpcio-tools bundles protoc);
# .tools/venv-test holds the client package with only its declared dependencies, plus
# pytest, so the suite proves `pip install ./clients/python` in a clean venv. Each is
# rebuilt when its pins change.
$(STAMPS)/venv: clients/python/requirements-generate.txt
	rm -rf $(VENV)
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r $<
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv-test: clients/python/requirements-test.txt clients/python/pyproject.toml
	rm -rf $(TEST_VENV)
	python3 -m venv $(TEST_VENV)
	$(TEST_PYTHON) -m pip install -q --disable-pip-version-check -r $< ./clients/python
	rm -rf clients/python/build clients/python/src/*.egg-info
	@mkdir -p $(STAMPS) && touch $@

# .tools/venv-sdk: the official openai and anthropic SDKs and pytest, pinned, for tests/sdk.
$(STAMPS)/venv-sdk: tests/sdk/requirements.txt
	rm -rf $(SDK_VENV)
	python3 -m venv $(SDK_VENV)
	$(SDK_PYTHON) -m pip install -q --disable-pip-version-check -r $<
	@mkdir -p $(STAMPS) && touch $@

# .tools/venv-stores: moto's S3-compatible server (and boto3), pinned, for tests/stores.
$(STAMPS)/venv-stores: tests/stores/requirements.txt
	rm -rf $(STORES_VENV)
	python3 -m venv $(STORES_VENV)
	$(STORES_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $<
	@mkdir -p $(STAMPS) && touch $@

# clients/typescript's npm packages (the client's dependencies, protoc-gen-es, typescript), as
# its committed package-lock.json pins them, into its git-ignored node_modules; npm's cache is
# .tools/npm-cache, so a rerun needs no network. Reinstalled when the lock file changes.
$(TS_MODULES): $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --cache $(NPM_CACHE)
	touch $@

# .tools/venv-console: Playwright (Python, which bundles its own driver) and pytest, pinned,
# for the console's browser test; it drives the system Chromium, never a download.
$(STAMPS)/venv-console: tests/console/requirements.txt
	rm -rf $(CONSOLE_VENV)
	python3 -m venv $(CONSOLE_VENV)
	$(CONSOLE_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $<
	@mkdir -p $(STAMPS) && touch $@

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

# The debug binary that the smoke test, the client suites, the SDK tests and the bench smoke
# run, built the way `cargo test` builds it (with the dev-dependencies' features: tokio's
# test-util and the like), so after `cargo test` this is a no-op; a plain `cargo build` would
# rebuild tokio and everything above it without them first (1.5 min on two cores). The small
# `records` test target is what pulls the binary in.
build:
	cargo test --no-run --test records

lint: $(STAMPS)/buf@$(BUF_VERSION)
	cd proto && buf lint
	@echo "buf lint: proto/ is clean"

generate: $(STAMPS)/buf@$(BUF_VERSION) $(STAMPS)/protoc-gen-go@$(PROTOC_GEN_GO) \
		$(STAMPS)/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC) $(STAMPS)/venv $(TS_MODULES)
	PYTHON=$(PYTHON) scripts/generate.sh

check-generated: $(STAMPS)/buf@$(BUF_VERSION) $(STAMPS)/protoc-gen-go@$(PROTOC_GEN_GO) \
		$(STAMPS)/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC) $(STAMPS)/venv $(TS_MODULES)
	PYTHON=$(PYTHON) scripts/check-generated.sh

smoke: build $(STAMPS)/grpcurl@$(GRPCURL_VERSION) $(STAMPS)/grpc-health-probe@$(HEALTH_PROBE_VERSION)
	tests/smoke/grpcurl.sh

# The client suites, against three gateways started for them by scripts/with-servers.sh:
# echo with no config, one for the error cases (a slow echo route, a route whose fake
# upstream answers 429) and one that requires client keys. -k runs every suite even when an
# earlier one fails, and still fails the run.
clients: build $(STAMPS)/venv-test $(TS_MODULES)
	scripts/with-servers.sh $(MAKE) -k client-go client-python client-java client-typescript

# tsc compiles the client, its tests and its example into the git-ignored build/; node:test
# runs the suite over gRPC and over gRPC-Web; then the example, over each.
# The TypeScript client compiled (tsc) into its git-ignored build/, again when a source changes;
# its Node suite (client-typescript) and its browser test (console-test) both run it.
TS_BUILT := $(TS_CLIENT)/build/.built
$(TS_BUILT): $(TS_MODULES) $(shell find $(TS_CLIENT)/src $(TS_CLIENT)/test $(TS_CLIENT)/examples -name '*.ts' 2>/dev/null)
	cd $(TS_CLIENT) && rm -rf build && npm run --silent build
	touch $@

client-typescript: $(TS_BUILT)
	cd $(TS_CLIENT) && npm test --silent
	cd $(TS_CLIENT) && node build/examples/chat.js --plaintext --addr "$$AI_SERVICE_ADDR" hello from typescript
	cd $(TS_CLIENT) && node build/examples/chat.js --plaintext --web --addr "$$AI_SERVICE_ADDR" hello from the web

# The official SDKs against the HTTP front doors of the same three gateways.
sdk: build $(STAMPS)/venv-sdk
	scripts/with-servers.sh $(SDK_PYTHON) -m pytest -p no:cacheprovider -q tests/sdk

client-go:
	cd clients/go && test -z "$$(gofmt -l .)" || { gofmt -l . >&2; echo "FAIL: gofmt" >&2; exit 1; }
	cd clients/go && go vet ./... && go test -count=1 ./...
	cd clients/go && go run ./example -plaintext -addr "$$AI_SERVICE_ADDR" "hello from go"

# Installs the package the way a user would (pip builds and reinstalls a local directory
# every time), then tests the installed copy.
client-python: $(STAMPS)/venv-test
	$(TEST_PYTHON) -m pip install -q --disable-pip-version-check ./clients/python
	rm -rf clients/python/build clients/python/src/*.egg-info
	cd clients/python && $(TEST_PYTHON) -m pytest -p no:cacheprovider
	$(TEST_PYTHON) clients/python/examples/chat.py --plaintext --addr "$$AI_SERVICE_ADDR" hello from python

# Maven generates the Java stubs (protoc + protoc-gen-grpc-java from Maven Central), runs
# the JUnit suite, then the example, in one invocation; artifacts are cached in ~/.m2.
client-java:
	mvn -B -ntp -f clients/java/pom.xml test exec:java -Dexec.args="$$AI_SERVICE_ADDR hello from java"

# The operator console in a real browser (tests/console/run.sh): the debug binary with client
# keys, the echo provider and an upstream that fails, driven by Playwright through Chromium.
# `make console-screenshots` runs the same and refreshes docs/console/*.png.
console-test: build chromium $(STAMPS)/venv-console $(STAMPS)/grpcurl@$(GRPCURL_VERSION) $(TS_BUILT)
	tests/console/run.sh $(CONSOLE_VENV)/bin/python

console-screenshots: build chromium $(STAMPS)/venv-console $(STAMPS)/grpcurl@$(GRPCURL_VERSION) $(TS_BUILT)
	CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console tests/console/run.sh $(CONSOLE_VENV)/bin/python

# Benchmarks (docs/benchmarks.md): `make bench` is the full run against the release build;
# `make bench-smoke` pushes a few hundred calls through every path with no timing judged.
.PHONY: bench bench-smoke
bench:
	bench/run.sh

bench-smoke: build
	bench/run.sh --smoke
	BENCH_AI_SERVICE_BIN=$${CARGO_TARGET_DIR:-target}/debug/ai-service ROUNDS=1 CALLS=100 WARMUP=10 bench/trace-cost.sh

# Fuzzing with cargo-fuzz (libFuzzer, on the nightly toolchain), targets in fuzz/: the SSE
# parser, each provider's reply reader (unary and stream), the config parser, the request
# validator and the two HTTP doors' request readers (OpenAI, Anthropic). `make fuzz` runs each
# target for FUZZ_SECONDS; `make fuzz-short` (15 s each, a minute and a half
# in all) is part of `make test`. The corpus starts from the test fixtures
# (fuzz/seed.sh) and grows in the git-ignored fuzz/corpus/; a crash is saved under
# fuzz/artifacts/<target>/ and fails the run; each one found becomes a regression test.
# No sanitizer: the crate forbids unsafe code, and what is hunted is panics, hangs and memory.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TARGETS := sse config validate provider_reply openai_request anthropic_request
FUZZ_SECONDS ?= 300

$(STAMPS)/cargo-fuzz@%:
	cargo install cargo-fuzz --locked --debug --version $* --root $(TOOLS)
	@mkdir -p $(STAMPS) && touch $@

# `make test` starts the fuzz targets' build (an instrumented release build of the whole
# dependency tree, the longest step of the suite) in the background right after the tools, at
# the idle scheduling class (SCHED_IDLE): it takes only the CPU the other steps leave unused
# (waits, links, tests that sleep) and never slows them. `fuzz` waits for it, then its own
# build finds everything done. Bounded: it is stopped after 40 minutes whatever happens.
FUZZ_BUILD_PID := $(TOOLS)/fuzz-build.pid
fuzz-build-idle: $(STAMPS)/cargo-fuzz@$(CARGO_FUZZ_VERSION)
	@if rustup run nightly rustc --version >/dev/null 2>&1; then \
	  (cd fuzz && exec timeout 40m chrt --idle 0 nice -n 19 cargo +nightly fuzz build --sanitizer none) \
	    >$(TOOLS)/fuzz-build.log 2>&1 </dev/null & echo $$! >$(FUZZ_BUILD_PID); \
	  echo "fuzz targets building in the background (idle priority): $(TOOLS)/fuzz-build.log"; fi

# A failing target's log is printed whole, then what matters in it once more at the end (the
# panic or libFuzzer's error, the input's file and Base64), so the end of a CI log names it.
fuzz: $(STAMPS)/cargo-fuzz@$(CARGO_FUZZ_VERSION)
	@rustup run nightly rustc --version >/dev/null 2>&1 || { \
	  echo "fuzz: cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
	@if [ -f $(FUZZ_BUILD_PID) ]; then pid=$$(cat $(FUZZ_BUILD_PID)); rm -f $(FUZZ_BUILD_PID); \
	  echo "fuzz: waiting for the background build ($$pid)"; \
	  while kill -0 "$$pid" 2>/dev/null; do sleep 2; done; fi
	fuzz/seed.sh
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  RUST_BACKTRACE=0 cargo +nightly fuzz run --sanitizer none $$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    >$(TOOLS)/fuzz-$$t.log 2>&1 </dev/null && { tail -n 12 $(TOOLS)/fuzz-$$t.log; continue; }; \
	  cat $(TOOLS)/fuzz-$$t.log; \
	  echo "fuzz: the target $$t failed; what it said (whole log above, $(TOOLS)/fuzz-$$t.log):"; \
	  grep -E "panicked at|^==[0-9]+==|ERROR|SUMMARY|Test unit written|Base64|^[Ee]rror|assertion|left:|right:" \
	    $(TOOLS)/fuzz-$$t.log | head -n 40; \
	  exit 1; \
	done

# In `make test`: a short run (15 s a target) where the nightly toolchain is installed, as it
# is on this project's machines; a machine without one says so plainly and skips it (no
# registry here serves a Rust toolchain).
fuzz-short:
	@if rustup run nightly rustc --version >/dev/null 2>&1; then $(MAKE) fuzz FUZZ_SECONDS=15; \
	else echo "fuzz-short: skipped: no nightly Rust toolchain (cargo-fuzz needs one)"; fi

# The soak (tests/soak.rs) at a larger scale than its shortened run in `cargo test`: 8 workers
# x SOAK_CALLS calls per phase, two phases, random upstream faults, a key rotation; then no
# call unanswered, one audit record per call, no growth of RSS, fds or threads.
SOAK_CALLS ?= 1000
soak:
	SOAK_CALLS=$(SOAK_CALLS) cargo test --test soak -- --nocapture

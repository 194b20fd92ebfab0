#!/usr/bin/env bash
# Writes link/ai-service.order: the functions the gateway runs, hottest first, for the linker
# to lay out together at the start of .text (lld's --symbol-ordering-file; build.rs passes it
# when linking the binary for x86-64 Linux). The kernel maps a binary's code in 64 KiB
# windows around each page it first runs; scattered over the whole 17 MiB of .text, the code
# of a launch and a few calls kept ~12 MiB of it resident. Packed together, about 3.
#
# What runs is taken from the production-like gateway of bench/run.sh (keys, budgets, cost,
# audit to a file, metrics, two-target routes, JSON logs at info) under
# `valgrind --tool=callgrind`: its launch, unary and streamed calls through gRPC and through
# the OpenAI-compatible HTTP door, a refused call, a scrape of /metrics and the health
# checks. The symbols are mangled names with their hashes, which change with the compiler,
# a dependency's version or features, and this crate's version: a stale name is skipped (the
# linker is told not to warn), so an old file only packs less. Run it again after such a
# change; bench/memory.sh shows what is resident.
#
#   bench/link-order.sh [BIN]        BIN: target/release/ai-service unless given
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
command -v valgrind >/dev/null || bench_fail "valgrind is not installed (apt-get install valgrind)"
WORK=$BENCH_DIR/results/link-order-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
build_tools
FAKE_PORT=$(free_port) SLOW_PORT=$FAKE_PORT DELAY_PORT=$FAKE_PORT GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
AUDIT_FILE=$WORK/audit.jsonl
AI_SERVICE_BIN=$(realpath "${1:-target/release/ai-service}")
new_client_key
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20
write_gateway_config "$WORK/gateway.yaml"
t0=$(date +%s%N)
TOKIO_WORKER_THREADS=2 on_gateway_core valgrind --tool=callgrind --demangle=no --dump-instr=no \
    --callgrind-out-file="$WORK/cg.%p" "$AI_SERVICE_BIN" --config "$WORK/gateway.yaml" serve \
    >"$WORK/gateway.log" 2>&1 </dev/null
GW_PID=${BENCH_PIDS[-1]}
pin_load "$LOADGEN" ready --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench \
    --since-ns "$t0" --max-s 120 >/dev/null || { cat "$WORK/gateway.log" >&2; bench_fail "gateway did not serve"; }
GRPC=(grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench --warmup 0 --max-s 120)
HTTP=(http --url "http://127.0.0.1:$GW_PORT/v1/chat/completions" --key "$CLIENT_KEY" --model bench --warmup 0 --max-s 120)
pin_load "$LOADGEN" "${GRPC[@]}" --concurrency 4 --calls 300 >/dev/null
pin_load "$LOADGEN" "${GRPC[@]}" --concurrency 4 --calls 50 --stream >/dev/null
pin_load "$LOADGEN" "${HTTP[@]}" --concurrency 4 --calls 100 >/dev/null
pin_load "$LOADGEN" "${HTTP[@]}" --concurrency 4 --calls 20 --stream >/dev/null
# A refused call (an unknown key) and the admin port's endpoints.
pin_load "$LOADGEN" grpc --addr "http://127.0.0.1:$GW_PORT" --key sk-unknown --model bench \
    --warmup 0 --calls 5 --max-s 60 >/dev/null 2>&1 || true
for path in metrics livez readyz; do
    curl -s -o /dev/null "http://127.0.0.1:$ADMIN_PORT/$path" || true
done
stop_pid "$GW_PID"
dump=$(find "$WORK" -maxdepth 1 -name 'cg.*' | head -1)
[[ -n $dump ]] || bench_fail "no callgrind output in $WORK"
python3 "$BENCH_DIR/link_order.py" "$dump" "$AI_SERVICE_BIN" >"$REPO_DIR/link/ai-service.order"
echo "wrote link/ai-service.order ($(grep -vc '^#' "$REPO_DIR/link/ai-service.order") symbols); trace in $WORK"

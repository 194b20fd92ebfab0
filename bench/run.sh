#!/usr/bin/env bash
# The benchmark: ai-service (release build, client keys required, audit to a file, metrics
# on, a two-target route) in front of a fast fake OpenAI upstream, measured side by side
# with calls made directly to the same fake, at concurrency 1, 16 and 64, unary and
# streaming, through gRPC and through the OpenAI-compatible HTTP front door (the same calls
# as `POST /v1/chat/completions` on the gRPC port); plus launch-to-first-call time, RSS idle and under load, and RSS with 1,000
# open streams. Gateway and direct runs are interleaved, ROUNDS times; warm-up calls are
# discarded; every result carries /proc/loadavg. Results: bench/results/<stamp>/results.jsonl
# and a summary (bench/report.py) on stdout. A third fake answers after 20 ms: the same
# comparison with a realistic upstream, at the highest concurrency.
#
# The floor: every gateway run is matched by the same run against a null proxy
# (bench/src/bin/null_proxy.rs: tonic server, hyper's pooled HTTP/1.1 client, nothing else),
# launched and placed exactly like the gateway and calling the same fake, so the tables can
# split the gateway's cost into what any proxy costs on this machine and ai-service's own. The
# direct runs also read the fake's CPU per call (sharing core 0 with the load generator), and a
# second fake alone on the gateway's core gives the same figure with a cross-core wake-up per
# call (label fakealone-unary): the machine's price of serving one call from another core.
#
#   bench/run.sh           the full run (`make bench`), 1–2 minutes once built
#   bench/run.sh --smoke   a few hundred calls through every path, no timing judged; ends
#                          with `bench smoke: N passed, M failed` (`make bench-smoke`)
#
# Environment: BENCH_AI_SERVICE_BIN (default: the release binary), AI_SERVICE_BIN (--smoke:
# default the debug binary),
# ROUNDS (3), CALLS_C1 (5000), CALLS (20000), STREAM_CALLS (3000), HOLD_STREAMS (1000),
# BENCH_RT (0; 1 runs every process under SCHED_FIFO, see lib.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"

SMOKE=false
[[ ${1:-} == --smoke ]] && SMOKE=true
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
if $SMOKE; then
    AI_SERVICE_BIN=${AI_SERVICE_BIN:-$TARGET_DIR/debug/ai-service}
    [[ -x $AI_SERVICE_BIN ]] || cargo build --quiet
    ROUNDS=1 CALLS_C1=100 CALLS=200 STREAM_CALLS=100 HOLD_STREAMS=50 WARMUP=20
    CONCURRENCY=(1 16)
    WORK=$(mktemp -d)
else
    # Not AI_SERVICE_BIN: the Makefile exports that as the debug build.
    AI_SERVICE_BIN=${BENCH_AI_SERVICE_BIN:-$TARGET_DIR/release/ai-service}
    [[ -x $AI_SERVICE_BIN ]] || cargo build --release --locked
    ROUNDS=${ROUNDS:-3} CALLS_C1=${CALLS_C1:-5000} CALLS=${CALLS:-20000}
    STREAM_CALLS=${STREAM_CALLS:-3000} HOLD_STREAMS=${HOLD_STREAMS:-1000} WARMUP=${WARMUP:-500}
    CONCURRENCY=(1 16 64)
    WORK=$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$WORK"
fi
AI_SERVICE_BIN=$(realpath "$AI_SERVICE_BIN")
trap 'bench_cleanup; $SMOKE && rm -rf "$WORK"' EXIT
# 1,000 streams hold 1,000 upstream connections in the gateway and in the fake.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

build_tools
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
PASSED=0 FAILED=0

# record LOADGEN-ARGS…: runs the load generator on core 0, appends its JSON line to the
# results; a run with failed calls (or none) counts as failed.
record() {
    local line
    if line=$(pin_load "$LOADGEN" "$@"); then
        echo "$line" | tee -a "$RESULTS"
        if grep -q '"errors":0,' <<<"$line" && ! grep -q '"calls":0,' <<<"$line"; then
            PASSED=$((PASSED + 1))
            return 0
        fi
    fi
    FAILED=$((FAILED + 1))
}

FAKE_PORT=$(free_port) SLOW_PORT=$(free_port) DELAY_PORT=$(free_port) GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
NULL_PORT=$(free_port) NULL_DELAY_PORT=$(free_port) ALONE_PORT=$(free_port)
AUDIT_FILE=$WORK/audit.jsonl
new_client_key
write_gateway_config "$WORK/gateway.yaml"
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20
DIRECT_FAKE_PID=$FAKE_PID
# The slow fake keeps streams open: a content chunk every 500 ms, 120 of them (60 s at most).
start_fake "$SLOW_PORT" "$WORK/slow.log" --chunks 120 --chunk-delay-ms 500
# A realistic upstream: 20 ms before each reply.
start_fake "$DELAY_PORT" "$WORK/delay.log" --delay-ms 20
# The same fake alone on the gateway's core: its CPU per call with a cross-core wake-up each.
start_fake_on "$CORE_GW" "$ALONE_PORT" "$WORK/fake-alone.log"
ALONE_FAKE_PID=$FAKE_PID

{
    echo "machine: nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\""
    echo "gateway: $AI_SERVICE_BIN ($("$AI_SERVICE_BIN" --version)) on core $CORE_GW; load and fake on core $CORE_LOAD"
    echo "floor: $NULL_PROXY on core $CORE_GW, launched like the gateway; a second fake alone on core $CORE_GW"
    echo "loadavg at start: $(cat /proc/loadavg)"
} | tee "$WORK/machine.txt"

# Launch to first served call, five times (the median is the figure); the last instance stays
# up for the runs.
for i in 1 2 3 4 5; do
    [[ -n ${GW_PID:-} ]] && stop_pid "$GW_PID"
    launch_gateway "$WORK/gateway.yaml" "$WORK/gateway.log" >"$WORK/launch.json"
    tee -a "$RESULTS" <"$WORK/launch.json"
done
PASSED=$((PASSED + 1))

# The floor, one per upstream the runs below use.
launch_null_proxy "$NULL_PORT" "http://127.0.0.1:$FAKE_PORT/v1/chat/completions" "$WORK/null-proxy.log"
NULL_FAKE_PID=$NULL_PID
launch_null_proxy "$NULL_DELAY_PORT" "http://127.0.0.1:$DELAY_PORT/v1/chat/completions" "$WORK/null-proxy-delay.log"
NULL_DELAY_PID=$NULL_PID

GRPC=(grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench --watch-pid "$GW_PID")
FLOOR=(grpc --addr "http://127.0.0.1:$NULL_PORT" --model bench-model --watch-pid "$NULL_FAKE_PID")
FLOOR_DELAY=(grpc --addr "http://127.0.0.1:$NULL_DELAY_PORT" --model bench-model --watch-pid "$NULL_DELAY_PID")
HTTP=(http --url "http://127.0.0.1:$FAKE_PORT/v1/chat/completions" --key sk-fake-bench --model bench-model)
GW_HTTP=(http --url "http://127.0.0.1:$GW_PORT/v1/chat/completions" --key "$CLIENT_KEY" --model bench --watch-pid "$GW_PID")
ALONE=(http --url "http://127.0.0.1:$ALONE_PORT/v1/chat/completions" --key sk-fake-bench --model bench-model --watch-pid "$ALONE_FAKE_PID")
for round in $(seq 1 "$ROUNDS"); do
    for c in "${CONCURRENCY[@]}"; do
        n=$CALLS
        [[ $c == 1 ]] && n=$CALLS_C1
        record "${HTTP[@]}" --watch-pid "$DIRECT_FAKE_PID" --label "direct-unary-r$round" --concurrency "$c" --calls "$n" --warmup "$WARMUP"
        record "${FLOOR[@]}" --label "floor-unary-r$round" --concurrency "$c" --calls "$n" --warmup "$WARMUP"
        record "${GRPC[@]}" --label "gateway-unary-r$round" --concurrency "$c" --calls "$n" --warmup "$WARMUP"
        record "${GW_HTTP[@]}" --label "gatewayhttp-unary-r$round" --concurrency "$c" --calls "$n" --warmup "$WARMUP"
        record "${ALONE[@]}" --label "fakealone-unary-r$round" --concurrency "$c" --calls "$n" --warmup "$WARMUP"
    done
    # With a 20 ms upstream, at the highest concurrency.
    c=${CONCURRENCY[-1]}
    record "${HTTP[@]/$FAKE_PORT/$DELAY_PORT}" --label "direct-delay20-r$round" --concurrency "$c" --calls "$STREAM_CALLS" --warmup "$c"
    record "${FLOOR_DELAY[@]}" --label "floor-delay20-r$round" --concurrency "$c" --calls "$STREAM_CALLS" --warmup "$c"
    record "${GRPC[@]}" --model bench-delay --label "gateway-delay20-r$round" --concurrency "$c" --calls "$STREAM_CALLS" --warmup "$c"
    for c in "${CONCURRENCY[@]}"; do
        record "${HTTP[@]}" --stream --label "direct-stream-r$round" --concurrency "$c" --calls "$STREAM_CALLS" --warmup "$WARMUP"
        record "${FLOOR[@]}" --stream --label "floor-stream-r$round" --concurrency "$c" --calls "$STREAM_CALLS" --warmup "$WARMUP"
        record "${GRPC[@]}" --stream --label "gateway-stream-r$round" --concurrency "$c" --calls "$STREAM_CALLS" --warmup "$WARMUP"
        record "${GW_HTTP[@]}" --stream --label "gatewayhttp-stream-r$round" --concurrency "$c" --calls "$STREAM_CALLS" --warmup "$WARMUP"
    done
done

# Many open streams against the slow fake: RSS while all of them are open.
record hold --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench-slow \
    --streams "$HOLD_STREAMS" --hold-s 3 --max-s 40 --watch-pid "$GW_PID"

# Production features really were on: every call audited, metrics exported.
curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" >"$WORK/metrics.txt" || true
stop_pid "$GW_PID"
audited=$(wc -l <"$AUDIT_FILE")
rm -f "$AUDIT_FILE" # about 370 bytes a call: tens of MiB per run
echo "audit records: $audited; metrics lines: $(grep -c '^ai_service_' "$WORK/metrics.txt" || true)"
if [[ $audited -gt 0 ]] && grep -q '^ai_service_' "$WORK/metrics.txt"; then
    PASSED=$((PASSED + 1))
else
    echo "bench: expected audit records and ai_service_ metrics" >&2
    FAILED=$((FAILED + 1))
fi

if $SMOKE; then
    echo "bench smoke: $PASSED passed, $FAILED failed"
else
    python3 "$BENCH_DIR/report.py" "$RESULTS" | tee "$WORK/summary.md"
    echo "results: $WORK"
fi
[[ $FAILED -eq 0 ]]

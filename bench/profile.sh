#!/usr/bin/env bash
# Where the gateway's CPU goes on the unary path: the same setup as bench/run.sh (release
# build, client keys, audit to a file, metrics, two-target route over the fake), then
# `perf record -e cpu-clock` (a software clock: this machine's perf has no hardware
# counters) on the gateway process during one load run, and a flat report: the share of the
# kernel against user space, and the top symbols.
#
#   bench/profile.sh [CONCURRENCY (1)] [CALLS (20000)]
# Output: bench/results/profile-<stamp>/ (perf.data, report.txt).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
C=${1:-1}
N=${2:-20000}
command -v perf >/dev/null || bench_fail "perf is not installed (apt-get install linux-perf)"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
AI_SERVICE_BIN=$(realpath "${BENCH_AI_SERVICE_BIN:-$TARGET_DIR/release/ai-service}")
WORK=$BENCH_DIR/results/profile-c$C-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
build_tools

FAKE_PORT=$(free_port) SLOW_PORT=$FAKE_PORT DELAY_PORT=$FAKE_PORT GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
AUDIT_FILE=$WORK/audit.jsonl
new_client_key
write_gateway_config "$WORK/gateway.yaml"
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20
launch_gateway "$WORK/gateway.yaml" "$WORK/gateway.log" >/dev/null
GRPC=(grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench --watch-pid "$GW_PID")
taskset -c "$CORE_LOAD" "$LOADGEN" "${GRPC[@]}" --concurrency "$C" --calls 2000 --warmup 0 >/dev/null

perf record -e cpu-clock -F 4999 -g -p "$GW_PID" -o "$WORK/perf.data" 2>"$WORK/perf-record.log" &
PERF_PID=$!
sleep 0.5
taskset -c "$CORE_LOAD" "$LOADGEN" "${GRPC[@]}" --concurrency "$C" --calls "$N" --warmup 0 | tee "$WORK/load.json"
kill -INT "$PERF_PID"
wait "$PERF_PID" || true
rm -f "$AUDIT_FILE"
# `head` closes the pipes early: not a failure.
set +o pipefail
{
    echo "## perf, cpu-clock, gateway pid only, unary Chat at c=$C, $N calls"
    echo "### by shared object (kernel vs ai-service vs libc)"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -8
    echo "### top symbols (self)"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null \
        | grep -E '^ +[0-9]' | head -40
} | tee "$WORK/report.txt"
echo "profile: $WORK"

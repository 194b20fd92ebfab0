#!/usr/bin/env bash
# Wake-ups and kernel entries per call, in real time: the gateway as deployed (bench/lib.sh's
# write_gateway_config) and the floor (the null proxy), each alone on the gateway's core, driven
# by the load generator; `perf stat -e context-switches,raw_syscalls:sys_enter -p PID` counts
# over the measured calls only. A context switch is a gateway thread going off its core — going
# idle to wait (then woken again) or preempted — so at c=1 it counts the wake-ups a call costs.
# Task polls, task wake-ups, parks and allocations per call come from callgrind instead
# (bench/callcounts.py over bench/callgrind.sh's dumps). Only 127.0.0.1; every run is bounded.
#
#   bench/wakeups.sh [BIN]     CALLS_C1 (5000), CALLS (20000), STREAMS (2000)
# Output: bench/results/wakeups-<stamp>/ (one JSON line per run) and a table on stdout.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
command -v perf >/dev/null || bench_fail "perf is not installed (apt-get install linux-perf)"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
AI_SERVICE_BIN=$(realpath "${1:-$TARGET_DIR/release/ai-service}")
CALLS_C1=${CALLS_C1:-5000} CALLS=${CALLS:-20000} STREAMS=${STREAMS:-2000}
WORK=$BENCH_DIR/results/wakeups-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
build_tools
echo "loadavg at start: $(cat /proc/loadavg)" | tee "$WORK/machine.txt"

FAKE_PORT=$(free_port) NULL_PORT=$(free_port) GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
SLOW_PORT=$FAKE_PORT DELAY_PORT=$FAKE_PORT
AUDIT_FILE=$WORK/audit.jsonl
new_client_key
write_gateway_config "$WORK/gateway.yaml"
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20
launch_null_proxy "$NULL_PORT" "http://127.0.0.1:$FAKE_PORT/v1/chat/completions" "$WORK/null-proxy.log"
launch_gateway "$WORK/gateway.yaml" "$WORK/gateway.log" >/dev/null

# counted WHO PID NAME CALLS LOADGEN-ARGS…: a warm-up, then the calls under perf stat.
counted() {
    local who=$1 pid=$2 name=$3 calls=$4
    shift 4
    pin_load "$LOADGEN" "$@" --calls 500 --warmup 0 >/dev/null
    perf stat -x, -e context-switches,raw_syscalls:sys_enter -p "$pid" -o "$WORK/$who-$name.perf" &
    local perf_pid=$!
    sleep 0.3
    pin_load "$LOADGEN" "$@" --calls "$calls" --warmup 0 --label "$who-$name" >"$WORK/$who-$name.json"
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    python3 - "$WORK/$who-$name.json" "$WORK/$who-$name.perf" "$calls" <<'PY' | tee -a "$WORK/results.jsonl"
import json, sys
r = json.load(open(sys.argv[1]))
for line in open(sys.argv[2]):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].isdigit():
        r[parts[2].split(":")[-1] + "_per_call"] = round(int(parts[0]) / int(sys.argv[3]), 2)
print(json.dumps(r))
PY
}

for who in floor gateway; do
    if [[ $who == floor ]]; then
        pid=$NULL_PID args=(grpc --addr "http://127.0.0.1:$NULL_PORT" --model bench-model)
    else
        pid=$GW_PID args=(grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench)
    fi
    counted "$who" "$pid" unary-c1 "$CALLS_C1" "${args[@]}" --concurrency 1
    counted "$who" "$pid" unary-c16 "$CALLS" "${args[@]}" --concurrency 16
    counted "$who" "$pid" stream-c1 "$STREAMS" "${args[@]}" --concurrency 1 --stream
done
rm -f "$AUDIT_FILE"

python3 - "$WORK/results.jsonl" <<'PY' | tee "$WORK/summary.md"
import json, sys
rows = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
print("\n| run | floor: context switches / call | gateway | floor: syscalls / call | gateway |")
print("|---|---|---|---|---|")
for name in ("unary-c1", "unary-c16", "stream-c1"):
    f, g = rows.get(f"floor-{name}", {}), rows.get(f"gateway-{name}", {})
    print(f"| {name} | {f.get('context-switches_per_call', '–')} | {g.get('context-switches_per_call', '–')} "
          f"| {f.get('sys_enter_per_call', '–')} | {g.get('sys_enter_per_call', '–')} |")
PY
echo "results: $WORK"

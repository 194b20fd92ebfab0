#!/usr/bin/env bash
# Two builds of the gateway side by side: the production-like gateway of bench/run.sh, once
# with binary A and once with binary B in every round (the order alternating between rounds),
# and the floor (the null proxy) in the same round; unary Chat at c=1, 16 and 64. Prints one
# JSON line per run (labels a-unary, b-unary, floor-unary) and a table: the median CPU per call
# of each, the median of the paired per-round differences B − A with their range, and each
# one's ratio to the floor. Only 127.0.0.1; every run is bounded.
#
#   bench/ab.sh BIN_A BIN_B     ROUNDS (6), CALLS_C1 (10000), CALLS (40000), WARMUP (500)
#
# Build the "before" binary from another commit with, for example:
#   git worktree add /tmp/before REV && (cd /tmp/before && cargo build --release --locked)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
[[ $# -eq 2 ]] || { echo "usage: bench/ab.sh BIN_A BIN_B" >&2; exit 64; }
BIN_A=$(realpath "$1") BIN_B=$(realpath "$2")
[[ -x $BIN_A && -x $BIN_B ]] || bench_fail "both binaries must exist: $BIN_A $BIN_B"
ROUNDS=${ROUNDS:-6} CALLS_C1=${CALLS_C1:-10000} CALLS=${CALLS:-40000} WARMUP=${WARMUP:-500}
WORK=$BENCH_DIR/results/ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
build_tools
{
    echo "A: $BIN_A ($("$BIN_A" --version))"
    echo "B: $BIN_B ($("$BIN_B" --version))"
    echo "loadavg at start: $(cat /proc/loadavg)"
} | tee "$WORK/machine.txt"

FAKE_PORT=$(free_port) NULL_PORT=$(free_port)
SLOW_PORT=$FAKE_PORT DELAY_PORT=$FAKE_PORT
AUDIT_FILE=$WORK/audit.jsonl
AI_SERVICE_BIN=$BIN_A new_client_key
start_fake "$FAKE_PORT" "$WORK/fake.log"
launch_null_proxy "$NULL_PORT" "http://127.0.0.1:$FAKE_PORT/v1/chat/completions" "$WORK/null-proxy.log"
FLOOR=(grpc --addr "http://127.0.0.1:$NULL_PORT" --model bench-model --watch-pid "$NULL_PID")

# run_gateway WHICH BIN ROUND: launches BIN, loads it at every concurrency, stops it.
run_gateway() {
    local which=$1 bin=$2 round=$3 c n
    GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
    write_gateway_config "$WORK/gateway-$which.yaml"
    AI_SERVICE_BIN=$bin launch_gateway "$WORK/gateway-$which.yaml" "$WORK/gateway-$which-$round.log" >/dev/null
    for c in 1 16 64; do
        n=$CALLS
        [[ $c == 1 ]] && n=$CALLS_C1
        pin_load "$LOADGEN" grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench \
            --watch-pid "$GW_PID" --label "$which-unary-r$round" --concurrency "$c" --calls "$n" \
            --warmup "$WARMUP" | tee -a "$WORK/results.jsonl"
    done
    stop_pid "$GW_PID"
    : >"$AUDIT_FILE" # about 370 bytes a call
}

for round in $(seq 1 "$ROUNDS"); do
    if ((round % 2)); then order=(a b); else order=(b a); fi
    for which in "${order[@]}"; do
        if [[ $which == a ]]; then run_gateway a "$BIN_A" "$round"; else run_gateway b "$BIN_B" "$round"; fi
    done
    for c in 1 16 64; do
        n=$CALLS
        [[ $c == 1 ]] && n=$CALLS_C1
        pin_load "$LOADGEN" "${FLOOR[@]}" --label "floor-unary-r$round" --concurrency "$c" --calls "$n" \
            --warmup "$WARMUP" | tee -a "$WORK/results.jsonl"
    done
done

python3 - "$WORK/results.jsonl" <<'PY' | tee "$WORK/summary.md"
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
def cpu(kind, c):
    return {r["label"].rsplit("-r", 1)[1]: r["gw_cpu_us_per_call"] for r in rows
            if r["label"].startswith(kind + "-unary-") and r["concurrency"] == c}
print("\n| c | floor CPU/call | A | B | B − A (median of rounds, range) | A / floor | B / floor |")
print("|---|---|---|---|---|---|---|")
for c in (1, 16, 64):
    f, a, b = cpu("floor", c), cpu("a", c), cpu("b", c)
    if not (f and a and b):
        continue
    diffs = [b[k] - a[k] for k in a if k in b]
    fm, am, bm = (statistics.median(x.values()) for x in (f, a, b))
    print(f"| {c} | {fm:.1f} µs | {am:.1f} µs | {bm:.1f} µs | {statistics.median(diffs):+.1f} "
          f"({min(diffs):+.1f} … {max(diffs):+.1f}) | {am / fm:.2f} | {bm / fm:.2f} |")
PY
echo "results: $WORK"

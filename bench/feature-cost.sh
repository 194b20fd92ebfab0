#!/usr/bin/env bash
# What each production feature costs per call, each measured alone: instructions per unary gRPC
# call (callgrind, exact and independent of the machine's load) of the gateway as deployed
# (bench/lib.sh's write_gateway_config) and of the same binary with one feature taken away —
# client keys, budgets, cost accounting, the audit trail — or the call's span and log line
# turned off (log level warn) or written as text, plus the null proxy (the floor) in the same run. The metrics have
# no switch: their cost is read from the deployed run's own profile (every signal goes through
# the `Metrics` trait object, so the inclusive count of its methods, the exporter's upkeep and
# the console's sampler is all of it). Only 127.0.0.1; every run is bounded.
#
#   bench/feature-cost.sh [BIN]   BIN: the release build by default; CALLS (2000), WARMUP (500)
# Output: the callgrind.sh results (bench/results/callgrind-<stamp>/) and a table on stdout.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(realpath "${1:-${CARGO_TARGET_DIR:-$BENCH_DIR/../target}/release/ai-service}")
VARIANTS=(no-auth no-budget no-cost log-warn log-text)
args=(floor "$BIN")
for v in "${VARIANTS[@]}"; do args+=("$BIN:$v"); done
GRPC_ONLY=1 STREAMS=${STREAMS:-500} "$BENCH_DIR/callgrind.sh" "${args[@]}" | tee /dev/stderr | sed -n 's/^results: //p' >/tmp/feature-cost.$$
WORK=$(cat /tmp/feature-cost.$$)
rm -f /tmp/feature-cost.$$
python3 "$BENCH_DIR/feature_cost.py" "$WORK" "${args[@]}" | tee "$WORK/features.md"

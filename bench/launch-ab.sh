#!/usr/bin/env bash
# Launch to the first served call, and RSS half a second after it, for two binaries launched in
# turn (A, B, A, B, …) against one fake upstream, with bench/run.sh's production-like config
# (keys, budgets, cost, audit to a file, metrics, JSON log line). Prints one line per launch;
# the medians of each binary's lines are the comparison. Only 127.0.0.1; bounded by ROUNDS.
#
#   bench/launch-ab.sh A B [ROUNDS (7)]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
[[ $# -ge 2 ]] || { echo "usage: bench/launch-ab.sh A B [ROUNDS]" >&2; exit 64; }
A=$(realpath "$1") B=$(realpath "$2") ROUNDS=${3:-7}
WORK=$(mktemp -d)
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
build_tools
FAKE_PORT=$(free_port) SLOW_PORT=$(free_port) DELAY_PORT=$(free_port) GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
AUDIT_FILE=$WORK/audit.jsonl
AI_SERVICE_BIN=$A
new_client_key
write_gateway_config "$WORK/gateway.yaml"
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20
echo "loadavg at start: $(cat /proc/loadavg)"
for _ in $(seq 1 "$ROUNDS"); do
    for bin in "$A" "$B"; do
        AI_SERVICE_BIN=$bin
        launch_gateway "$WORK/gateway.yaml" "$WORK/gateway.log" >"$WORK/launch.json"
        sleep 0.5
        status=/proc/$GW_PID/status
        echo "$bin $(cat "$WORK/launch.json") rss_kib=$(awk '/VmRSS/{print $2}' "$status")" \
            "anon_kib=$(awk '/RssAnon/{print $2}' "$status") file_kib=$(awk '/RssFile/{print $2}' "$status")"
        stop_pid "$GW_PID"
    done
done

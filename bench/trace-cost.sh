#!/usr/bin/env bash
# What trace export costs: the production-like gateway of bench/run.sh with and without
# `tracing.otlp` (http/protobuf to a local sink that accepts every export), interleaved
# ROUNDS times, unary Chat at c=1 and c=16; prints one JSON line per run (label trace-off or
# trace-on) and the gateway's CPU per call for each. Only 127.0.0.1; every run is bounded.
#
#   bench/trace-cost.sh        ROUNDS (2), CALLS (20000), WARMUP (500), BENCH_AI_SERVICE_BIN
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
ROUNDS=${ROUNDS:-2}
CALLS=${CALLS:-20000}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
AI_SERVICE_BIN=$(realpath "${BENCH_AI_SERVICE_BIN:-$TARGET_DIR/release/ai-service}")
WORK=$BENCH_DIR/results/trace-cost-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
build_tools

# The collector: accepts every OTLP/HTTP export with an empty (valid) protobuf reply.
SINK_PORT=$(free_port)
taskset -c "$CORE_LOAD" python3 - "$SINK_PORT" >"$WORK/sink.log" 2>&1 <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
        print("export", self.path, flush=True)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
BENCH_PIDS+=("$!")

FAKE_PORT=$(free_port) SLOW_PORT=$FAKE_PORT DELAY_PORT=$FAKE_PORT
AUDIT_FILE=$WORK/audit.jsonl
new_client_key
start_fake "$FAKE_PORT" "$WORK/fake.log"
for round in $(seq 1 "$ROUNDS"); do
    for mode in off on; do
        GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
        write_gateway_config "$WORK/gateway-$mode.yaml"
        [[ $mode == on ]] && printf 'tracing:\n  otlp: {endpoint: "http://127.0.0.1:%s", protocol: http/protobuf}\n' \
            "$SINK_PORT" >>"$WORK/gateway-$mode.yaml"
        launch_gateway "$WORK/gateway-$mode.yaml" "$WORK/gateway-$mode-$round.log" >/dev/null
        GRPC=(grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench --watch-pid "$GW_PID")
        for c in 1 16; do
            pin_load "$LOADGEN" "${GRPC[@]}" --label "trace-$mode" --concurrency "$c" --calls "$CALLS" \
                --warmup "${WARMUP:-500}" | tee -a "$WORK/results.jsonl"
        done
        stop_pid "$GW_PID"
    done
done
grep -q "^export /v1/traces" "$WORK/sink.log" || bench_fail "trace export on, but the sink received no export"
python3 - "$WORK/results.jsonl" <<'PY'
import json, sys, statistics
runs = [json.loads(line) for line in open(sys.argv[1])]
print("\n| c | gateway CPU/call, export off | export on | added by export |\n|---|---|---|---|")
for c in (1, 16):
    cpu = {m: statistics.median(r["gw_cpu_us_per_call"] for r in runs
                                if r["label"] == f"trace-{m}" and r["concurrency"] == c)
           for m in ("off", "on")}
    print(f"| {c} | {cpu['off']:.1f} µs | {cpu['on']:.1f} µs | **{cpu['on'] - cpu['off']:+.1f} µs** |")
PY
echo "results: $WORK"

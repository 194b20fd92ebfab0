#!/usr/bin/env bash
# ai-service beside the LiteLLM proxy, in the same run, on the same core, over the same fake
# upstream, with the same load: LiteLLM through its OpenAI-compatible HTTP endpoint, ours
# through the same protocol (its OpenAI-compatible `POST /v1/chat/completions`) and through
# gRPC, each alone on core 1 (the load generator and the fake on core 0). Prints the result
# lines and the ratios (throughput, p50, CPU per call, RSS).
#
# LiteLLM is installed from PyPI into bench/.venv (git-ignored) the first time:
# `pip install 'litellm[proxy]'` (a master key is required; no database is used).
#
#   bench/compare-litellm.sh        CONCURRENCY (16), SECONDS_PER_RUN (15)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"

C=${CONCURRENCY:-16}
SECS=${SECONDS_PER_RUN:-15}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_DIR/target}
AI_SERVICE_BIN=$(realpath "${BENCH_AI_SERVICE_BIN:-$TARGET_DIR/release/ai-service}")
[[ -x $AI_SERVICE_BIN ]] || cargo build --release --locked
VENV=$BENCH_DIR/.venv
if [[ ! -x $VENV/bin/litellm ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check 'litellm[proxy]' \
        || bench_fail "pip install 'litellm[proxy]' failed (error above)"
fi
LITELLM_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')

WORK=$BENCH_DIR/results/litellm-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
ulimit -n 65536 2>/dev/null || true
build_tools

# tree_rss_kib PID: RSS of a process and its children (uvicorn may fork workers).
tree_rss_kib() {
    local total=0 p r
    for p in "$1" $(pgrep -P "$1" || true); do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${r:-0}))
    done
    echo "$total"
}

FAKE_PORT=$(free_port) SLOW_PORT=$FAKE_PORT DELAY_PORT=$FAKE_PORT GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
LITELLM_PORT=$(free_port)
AUDIT_FILE=$WORK/audit.jsonl
new_client_key
write_gateway_config "$WORK/gateway.yaml"
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20

MASTER_KEY=sk-litellm-bench-master
cat >"$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:$FAKE_PORT/v1
      api_key: sk-fake-bench
general_settings:
  master_key: $MASTER_KEY
litellm_settings:
  telemetry: false
EOF
echo "litellm $LITELLM_VERSION; starting on core $CORE_GW"
t0=$(date +%s%N)
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
    taskset -c "$CORE_GW" "$VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 \
    --port "$LITELLM_PORT" --num_workers 1 >"$WORK/litellm.log" 2>&1 </dev/null &
LITELLM_PID=$!
BENCH_PIDS+=("$LITELLM_PID")
for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$LITELLM_PORT/health/liveliness" >/dev/null 2>&1 && break
    kill -0 "$LITELLM_PID" 2>/dev/null || { tail -30 "$WORK/litellm.log" >&2; bench_fail "litellm exited"; }
    sleep 0.25
done
LITELLM_READY_MS=$((($(date +%s%N) - t0) / 1000000))
echo "litellm ready after ${LITELLM_READY_MS} ms"

launch_gateway "$WORK/gateway.yaml" "$WORK/gateway.log" >"$WORK/launch.json"
cat "$WORK/launch.json"

LITELLM_RSS_IDLE=$(tree_rss_kib "$LITELLM_PID")
GW_RSS_IDLE=$(tree_rss_kib "$GW_PID")
run() { taskset -c "$CORE_LOAD" "$LOADGEN" "$@" --concurrency "$C" --calls 100000000 --max-s "$SECS" --warmup 200; }
# Same load, one after the other, each while the other one idles; then RSS of each.
litellm_json=$(run http --url "http://127.0.0.1:$LITELLM_PORT/v1/chat/completions" --key "$MASTER_KEY" \
    --model bench --watch-pid "$LITELLM_PID" --label litellm-unary)
LITELLM_RSS_LOAD=$(tree_rss_kib "$LITELLM_PID")
ours_http_json=$(run http --url "http://127.0.0.1:$GW_PORT/v1/chat/completions" --key "$CLIENT_KEY" \
    --model bench --watch-pid "$GW_PID" --label ai-service-http-unary)
ours_json=$(run grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench \
    --watch-pid "$GW_PID" --label ai-service-unary)
GW_RSS_LOAD=$(tree_rss_kib "$GW_PID")
rm -f "$AUDIT_FILE" # ~370 bytes a call: over 100 MiB for a 15 s run
echo "$litellm_json" | tee "$WORK/results.jsonl"
echo "$ours_http_json" | tee -a "$WORK/results.jsonl"
echo "$ours_json" | tee -a "$WORK/results.jsonl"

python3 - "$litellm_json" "$ours_json" "$LITELLM_RSS_IDLE" "$LITELLM_RSS_LOAD" "$GW_RSS_IDLE" "$GW_RSS_LOAD" \
    "$LITELLM_VERSION" "$C" "$LITELLM_READY_MS" "$(cat "$WORK/launch.json")" "$ours_http_json" <<'EOF' | tee "$WORK/summary.md"
import json, sys
l, o, h = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[11])
lri, lrl, ori, orl = (int(x) / 1024 for x in sys.argv[3:7])
print(f"\n### ai-service vs LiteLLM {sys.argv[7]} on the same protocol, unary, concurrency {sys.argv[8]}, each alone on one core\n")
print("| | LiteLLM (OpenAI HTTP) | ai-service (OpenAI HTTP) | ratio |")
print("|---|---|---|---|")
print(f"| throughput (calls/s) | {l['throughput_rps']:.0f} | {h['throughput_rps']:.0f} | **{h['throughput_rps']/l['throughput_rps']:.0f}×** |")
print(f"| latency p50 (µs) | {l['p50_us']:.0f} | {h['p50_us']:.0f} | {l['p50_us']/h['p50_us']:.0f}× lower |")
print(f"| latency p99 (µs) | {l['p99_us']:.0f} | {h['p99_us']:.0f} | {l['p99_us']/h['p99_us']:.0f}× lower |")
print(f"| CPU per call (µs) | {l.get('gw_cpu_us_per_call', 0):.0f} | {h.get('gw_cpu_us_per_call', 0):.1f} | {l.get('gw_cpu_us_per_call', 0)/max(h.get('gw_cpu_us_per_call', 1), 0.1):.0f}× less |")
print(f"| failed calls | {l['errors']} | {h['errors']} | |")
print(f"\n### ai-service vs LiteLLM {sys.argv[7]}, ours through gRPC, unary, concurrency {sys.argv[8]}\n")
print("| | LiteLLM (HTTP) | ai-service (gRPC) | ratio |")
print("|---|---|---|---|")
print(f"| throughput (calls/s) | {l['throughput_rps']:.0f} | {o['throughput_rps']:.0f} | **{o['throughput_rps']/l['throughput_rps']:.0f}×** |")
print(f"| latency p50 (µs) | {l['p50_us']:.0f} | {o['p50_us']:.0f} | {l['p50_us']/o['p50_us']:.0f}× lower |")
print(f"| latency p99 (µs) | {l['p99_us']:.0f} | {o['p99_us']:.0f} | {l['p99_us']/o['p99_us']:.0f}× lower |")
print(f"| CPU per call (µs) | {l.get('gw_cpu_us_per_call', 0):.0f} | {o.get('gw_cpu_us_per_call', 0):.1f} | {l.get('gw_cpu_us_per_call', 0)/max(o.get('gw_cpu_us_per_call', 1), 0.1):.0f}× less |")
print(f"| RSS idle (MiB) | {lri:.1f} | {ori:.1f} | 1/{lri/ori:.0f} |")
print(f"| RSS after load (MiB) | {lrl:.1f} | {orl:.1f} | 1/{lrl/orl:.0f} |")
ours_ready = json.loads(sys.argv[10])["launch_to_first_call_ms"]
print(f"| launch to serving (ms) | {int(sys.argv[9])} | {ours_ready:.0f} | {int(sys.argv[9])/ours_ready:.0f}× sooner |")
print(f"| failed calls | {l['errors']} | {o['errors']} | |")
print(f"| loadavg | {l['loadavg']} | {o['loadavg']} | |")
ok_tp = o['throughput_rps'] >= 100 * l['throughput_rps']
ok_mem = orl * 20 <= lrl
print(f"\ntarget ≥100× LiteLLM throughput: {'met' if ok_tp else 'missed'}; at ≤1/20 of its memory: {'met' if ok_mem else 'missed'}")
EOF

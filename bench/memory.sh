#!/usr/bin/env bash
# Where the gateway's memory goes, for each binary given (and the floor): RSS after launch,
# after WARMUP unary calls (the figure bench/run.sh calls idle), and with HOLD_STREAMS streams
# held open against a slow upstream — each split into anonymous memory and file-backed pages
# (the binary's code and read-only data, mapped from the file), with the binary's own
# mappings listed. Only 127.0.0.1; every run is bounded.
#
#   bench/memory.sh BIN|floor …     WARMUP (500), HOLD_STREAMS (1000)
#
# One JSON line per binary and phase, then a table (bench/results/memory-*/summary.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
[[ $# -ge 1 ]] || { echo "usage: bench/memory.sh BIN|floor …" >&2; exit 64; }
WARMUP=${WARMUP:-500} HOLD_STREAMS=${HOLD_STREAMS:-1000}
WORK=$BENCH_DIR/results/memory-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
build_tools
echo "loadavg at start: $(cat /proc/loadavg)" | tee "$WORK/machine.txt"

FAKE_PORT=$(free_port) SLOW_PORT=$(free_port)
DELAY_PORT=$FAKE_PORT
AUDIT_FILE=$WORK/audit.jsonl
for arg in "$@"; do
    [[ $arg == floor ]] || { AI_SERVICE_BIN=$(realpath "$arg"); break; }
done
[[ -n ${AI_SERVICE_BIN:-} ]] || AI_SERVICE_BIN=$(realpath "$REPO_DIR/target/release/ai-service")
new_client_key
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20
start_fake "$SLOW_PORT" "$WORK/slow.log" --chunks 120 --chunk-delay-ms 500

# snapshot LABEL PHASE PID: one JSON line of the process's memory now.
snapshot() {
    python3 - "$1" "$2" "$3" <<'PY' | tee -a "$WORK/results.jsonl"
import json, os, re, sys
label, phase, pid = sys.argv[1], sys.argv[2], sys.argv[3]
status = open(f"/proc/{pid}/status").read()
field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", status, re.M).group(1))
exe = os.readlink(f"/proc/{pid}/exe")
own, mapping = {}, None
for line in open(f"/proc/{pid}/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        parts = line.split()
        mapping = parts[1] if len(parts) > 5 and parts[5] == exe else None
    elif mapping and line.startswith("Rss:"):
        own[mapping] = own.get(mapping, 0) + int(line.split()[1])
print(json.dumps({"label": label, "phase": phase, "rss_kib": field("VmRSS"),
    "anon_kib": field("RssAnon"), "file_kib": field("RssFile"),
    "binary_kib": own, "threads": field("Threads")}))
PY
}

i=0
for arg in "$@"; do
    i=$((i + 1))
    GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
    if [[ $arg == floor ]]; then
        label=floor
        launch_null_proxy "$GW_PORT" "http://127.0.0.1:$FAKE_PORT/v1/chat/completions" "$WORK/floor-$i.log"
        pid=$NULL_PID
        snapshot "$label" launched "$pid"
        pin_load "$LOADGEN" grpc --addr "http://127.0.0.1:$GW_PORT" --model bench-model \
            --concurrency 1 --calls "$WARMUP" --warmup 0 --max-s 60 >/dev/null
        snapshot "$label" warm "$pid"
        stop_pid "$pid"
        # The floor has one upstream: a second one for the slow fake.
        launch_null_proxy "$GW_PORT" "http://127.0.0.1:$SLOW_PORT/v1/chat/completions" "$WORK/floor-slow-$i.log"
        pid=$NULL_PID
        pin_load "$LOADGEN" grpc --addr "http://127.0.0.1:$GW_PORT" --model bench-model \
            --concurrency 1 --calls "$WARMUP" --warmup 0 --max-s 60 >/dev/null || true
        hold=(hold --addr "http://127.0.0.1:$GW_PORT" --model bench-model)
    else
        label="b$i:$(basename "$arg")"
        AI_SERVICE_BIN=$(realpath "$arg")
        write_gateway_config "$WORK/gateway-$i.yaml"
        launch_gateway "$WORK/gateway-$i.yaml" "$WORK/gateway-$i.log" >/dev/null
        pid=$GW_PID
        snapshot "$label" launched "$pid"
        pin_load "$LOADGEN" grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench \
            --concurrency 1 --calls "$WARMUP" --warmup 0 --max-s 60 >/dev/null
        snapshot "$label" warm "$pid"
        hold=(hold --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench-slow)
    fi
    pin_load "$LOADGEN" "${hold[@]}" --streams "$HOLD_STREAMS" --hold-s 2 --max-s 40 \
        --watch-pid "$pid" | tee "$WORK/hold-$i.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["label"]=sys.argv[2]; r["phase"]="streams"; print(json.dumps(r))' \
        "$WORK/hold-$i.json" "$label" >>"$WORK/results.jsonl"
    stop_pid "$pid"
    : >"$AUDIT_FILE"
done

python3 - "$WORK/results.jsonl" <<'PY' | tee "$WORK/summary.md"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("| binary | launched RSS (anon + file) MiB | after warm-up RSS (anon + file) | binary's pages after warm-up (MiB per mapping) | with streams open | KiB per stream |")
print("|---|---|---|---|---|---|")
labels = list(dict.fromkeys(r["label"] for r in rows))
mib = lambda k: k / 1024
for label in labels:
    by = {r["phase"]: r for r in rows if r["label"] == label}
    l, w, s = by.get("launched"), by.get("warm"), by.get("streams")
    fmt = lambda r: f'{mib(r["rss_kib"]):.1f} ({mib(r["anon_kib"]):.1f} + {mib(r["file_kib"]):.1f})' if r else "—"
    own = " / ".join(f"{p} {mib(k):.1f}" for p, k in sorted(w["binary_kib"].items())) if w else "—"
    held = f'{mib(s["gw_rss_open_max_kib"]):.1f} ({s["open"]} open)' if s else "—"
    per = f'{s["gw_rss_per_stream_kib"]:.1f}' if s else "—"
    print(f"| {label} | {fmt(l)} | {fmt(w)} | {own} | {held} | {per} |")
PY
echo "results: $WORK"

#!/usr/bin/env bash
# Instructions per call, exact and independent of the machine's load: each binary of the
# production-like gateway of bench/run.sh (keys, audit to a file, metrics, a two-target route)
# under `valgrind --tool=callgrind`, all its threads, the counters zeroed after the warm-up
# (`callgrind_control -z`) and dumped after CALLS calls (`callgrind_control -d`). Unary Chat
# through gRPC at c=1 and c=16, and the same calls through the OpenAI-compatible HTTP door
# (`POST /v1/chat/completions`) for a binary that serves it. Prints one JSON line per run
# and a table of instructions per call with each binary's HTTP/gRPC ratio. Only 127.0.0.1;
# every run is bounded. CPU time under valgrind means nothing; the counts do.
#
#   bench/callgrind.sh BIN[:VARIANT]…   CALLS (2000), WARMUP (500), SERVER_HTTP (unset: the
#                                config's server.http as a YAML flow value, e.g. '{enabled: false}'),
#                                GRPC_ONLY (unset: set, the HTTP door is not counted), STREAMS
#                                (unset: a number of StreamChat calls of 20 chunks to count at c=1)
# A BIN may be `floor`: the null proxy (bench/src/bin/null_proxy.rs), counted the same way, gRPC
# only. VARIANT is one of write_gateway_config's (bench/lib.sh): the same binary with one feature
# taken away, as bench/feature-cost.sh does. Valgrind's CPU has no SHA extensions, so the client
# key's SHA-256 is counted in software (about 3,400 instructions a call more than on this host).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_DIR"
[[ $# -ge 1 ]] || { echo "usage: bench/callgrind.sh BIN…" >&2; exit 64; }
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null \
    || bench_fail "valgrind is not installed (apt-get install valgrind)"
CALLS=${CALLS:-2000} WARMUP=${WARMUP:-500}
WORK=$BENCH_DIR/results/callgrind-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WORK"
trap bench_cleanup EXIT
build_tools
echo "loadavg at start: $(cat /proc/loadavg)" | tee "$WORK/machine.txt"

FAKE_PORT=$(free_port)
SLOW_PORT=$FAKE_PORT DELAY_PORT=$FAKE_PORT
AUDIT_FILE=$WORK/audit.jsonl
for arg in "$@"; do
    [[ ${arg%%:*} == floor ]] || { AI_SERVICE_BIN=$(realpath "${arg%%:*}"); break; }
done
[[ -n ${AI_SERVICE_BIN:-} ]] || AI_SERVICE_BIN=$(realpath "$REPO_DIR/target/release/ai-service")
new_client_key
start_fake "$FAKE_PORT" "$WORK/fake.log" --chunks 20

# dumps: this gateway's callgrind dumps so far, oldest first.
dumps() { find "$WORK" -maxdepth 1 -name "cg.$GW_PID.*" -printf '%T@ %p\n' | sort -n | cut -d' ' -f2; }

# counted NAME C LOADGEN-ARGS…: WARMUP calls, then zero the counters, make CALLS calls at
# concurrency C (no warm-up of loadgen's own inside the count), dump; prints the JSON line.
counted() {
    local name=$1 c=$2 dump before ir
    shift 2
    pin_load "$LOADGEN" "$@" --concurrency "$c" --calls "$WARMUP" --warmup 0 --max-s 120 >/dev/null
    callgrind_control -z "$GW_PID" >/dev/null 2>&1
    pin_load "$LOADGEN" "$@" --concurrency "$c" --calls "$CALLS" --warmup 0 --max-s 120 \
        --label "$name" >"$WORK/$name.json"
    before=$(dumps | wc -l)
    callgrind_control -d "$GW_PID" >/dev/null 2>&1
    for _ in $(seq 1 100); do
        (($(dumps | wc -l) > before)) && break
        sleep 0.1
    done
    dump=$(dumps | tail -1)
    ir=$(sed -n 's/^\(summary\|totals\): \([0-9]*\).*/\2/p' "$dump" | head -1)
    [[ -n $ir ]] || bench_fail "no instruction count in $dump"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["instructions"]=int(sys.argv[2]); r["instructions_per_call"]=round(int(sys.argv[2])/r["calls"]); r["binary"]=sys.argv[3]; r["dump"]=sys.argv[4]; print(json.dumps(r))' \
        "$WORK/$name.json" "$ir" "$arg" "$dump" | tee -a "$WORK/results.jsonl"
}

# under_valgrind LOG CMD…: CMD under callgrind on the gateway's core; sets GW_PID.
under_valgrind() {
    local log=$1
    shift
    TOKIO_WORKER_THREADS=2 on_gateway_core valgrind --tool=callgrind --dump-instr=no \
        --callgrind-out-file="$WORK/cg.%p" "$@" >"$log" 2>&1 </dev/null
    GW_PID=${BENCH_PIDS[-1]}
}

i=0
for arg in "$@"; do
    i=$((i + 1))
    GW_PORT=$(free_port) ADMIN_PORT=$(free_port)
    t0=$(date +%s%N)
    if [[ $arg == floor ]]; then
        under_valgrind "$WORK/floor-$i.log" "$NULL_PROXY" --listen "127.0.0.1:$GW_PORT" \
            --upstream "http://127.0.0.1:$FAKE_PORT/v1/chat/completions"
        wait_listening "$WORK/floor-$i.log" "null proxy under valgrind" 120
        GRPC_ARGS=(grpc --addr "http://127.0.0.1:$GW_PORT" --model bench-model)
    else
        bin=${arg%%:*} variant=deployed
        [[ $arg == *:* ]] && variant=${arg#*:}
        AI_SERVICE_BIN=$(realpath "$bin")
        write_gateway_config "$WORK/gateway-$i.yaml" "$variant"
        if [[ -n ${SERVER_HTTP:-} ]]; then
            sed -i "s/^  shutdown_grace: 2s$/&\n  http: $SERVER_HTTP/" "$WORK/gateway-$i.yaml"
        fi
        under_valgrind "$WORK/gateway-$i.log" "$AI_SERVICE_BIN" --config "$WORK/gateway-$i.yaml" serve
        pin_load "$LOADGEN" ready --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench \
            --since-ns "$t0" --max-s 120 >/dev/null || { cat "$WORK/gateway-$i.log" >&2; bench_fail "gateway did not serve"; }
        GRPC_ARGS=(grpc --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench)
    fi
    for c in 1 16; do
        counted "b$i-grpc-c$c" "$c" "${GRPC_ARGS[@]}"
    done
    if [[ -n ${STREAMS:-} ]]; then
        CALLS=$STREAMS counted "b$i-stream-c1" 1 "${GRPC_ARGS[@]}" --stream
    fi
    # The HTTP door, when this build has one (and GRPC_ONLY is not set); the floor has none.
    if [[ $arg != floor && -z ${GRPC_ONLY:-} ]] && curl -sf -o /dev/null -H "authorization: Bearer $CLIENT_KEY" \
        -H 'content-type: application/json' -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions"; then
        for c in 1 16; do
            counted "b$i-http-c$c" "$c" http --url "http://127.0.0.1:$GW_PORT/v1/chat/completions" \
                --key "$CLIENT_KEY" --model bench
        done
    fi
    stop_pid "$GW_PID"
    : >"$AUDIT_FILE"
done

python3 - "$WORK/results.jsonl" "$@" <<'PY' | tee "$WORK/summary.md"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
floor = {c: next((r["instructions_per_call"] for i, n in enumerate(sys.argv[2:], 1) if n == "floor"
                  for r in rows if r["label"] == f"b{i}-grpc-c{c}"), None) for c in (1, 16)}
print("\n| binary | c | gRPC instructions/call | ÷ floor | HTTP instructions/call | HTTP / gRPC |")
print("|---|---|---|---|---|---|")
for i, name in enumerate(sys.argv[2:], 1):
    for c in (1, 16):
        get = lambda door: next((r["instructions_per_call"] for r in rows if r["label"] == f"b{i}-{door}-c{c}"), None)
        g, h = get("grpc"), get("http")
        f = floor[c]
        print(f"| {name} | {c} | {g:,} | {f'{g/f:.2f}' if f else '–'} | {f'{h:,}' if h else '–'} | {f'{h/g:.2f}' if h else '–'} |")
streams = [(name, r["instructions_per_call"]) for i, name in enumerate(sys.argv[2:], 1)
           for r in rows if r["label"] == f"b{i}-stream-c1"]
if streams:
    floor_stream = next((n for name, n in streams if name == "floor"), None)
    print("\n| binary | StreamChat (20 chunks), c=1: instructions per stream | per chunk | own per chunk (− floor) |")
    print("|---|---|---|---|")
    for name, n in streams:
        own = f"{(n - floor_stream) / 20:,.0f}" if floor_stream and name != "floor" else "–"
        print(f"| {name} | {n:,} | {n / 20:,.0f} | {own} |")
PY
echo "results: $WORK"

# Shell helpers shared by bench/run.sh and bench/compare-litellm.sh. Source it; it defines
# functions only. Every process started here is recorded in BENCH_PIDS, and `bench_cleanup`
# (set as an EXIT trap) stops exactly those, by pid.
#
# Placement: the load generator and the fake upstream share core 0, the gateway (or LiteLLM)
# runs alone on core 1, so the figure under test is not disturbed by its own load. The floor
# (bench/src/bin/null_proxy.rs) is launched and placed exactly like the gateway.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BENCH_TARGET=$BENCH_DIR/target
LOADGEN=$BENCH_TARGET/release/loadgen
FAKE=$BENCH_TARGET/release/fake-upstream
NULL_PROXY=$BENCH_TARGET/release/null-proxy
BENCH_PIDS=()
CORE_LOAD=0
CORE_GW=1
[[ $(nproc) -ge 2 ]] || CORE_GW=0
# BENCH_RT=1 runs the fake, the load generator and the gateway under SCHED_FIFO (chrt -f 1),
# so that other work on a shared machine cannot delay their wake-ups: an experiment that
# tells scheduler noise from the gateway's own tail latency.
RT=()
[[ ${BENCH_RT:-0} == 1 ]] && RT=(chrt -f 1)
pin_load() { taskset -c "$CORE_LOAD" "${RT[@]}" "$@"; }

bench_fail() {
    echo "bench: FAIL: $*" >&2
    exit 1
}

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    BENCH_PIDS=()
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# build_tools: the fake upstream and the load generator, in bench/target (their own lock).
build_tools() {
    CARGO_TARGET_DIR=$BENCH_TARGET cargo build --quiet --release --locked \
        --manifest-path "$BENCH_DIR/Cargo.toml" || bench_fail "building bench/ tools"
}

# wait_listening LOG WHAT [SECONDS]: waits (5 s unless told) for the last started process to
# print its `listening on` line.
wait_listening() {
    local log=$1 what=$2 i
    for i in $(seq 1 $((${3:-5} * 20))); do
        grep -q "listening on" "$log" 2>/dev/null && return 0
        kill -0 "${BENCH_PIDS[-1]}" 2>/dev/null || { cat "$log" >&2; bench_fail "$what exited"; }
        sleep 0.05
    done
    bench_fail "$what did not start"
}

# start_fake PORT LOG [fake-upstream options…]: the fake on core 0; waits until it answers.
# Sets FAKE_PID.
start_fake() {
    start_fake_on "$CORE_LOAD" "$@"
}

# start_fake_on CORE PORT LOG [fake-upstream options…]: start_fake on another core.
start_fake_on() {
    local core=$1 port=$2 log=$3
    shift 3
    taskset -c "$core" "${RT[@]}" "$FAKE" --listen "127.0.0.1:$port" "$@" >"$log" 2>&1 </dev/null &
    FAKE_PID=$!
    BENCH_PIDS+=("$FAKE_PID")
    wait_listening "$log" "fake upstream on $port"
}

# on_gateway_core CMD…: runs CMD in the background as the gateway runs: a clean environment
# (TOKIO_WORKER_THREADS passed through), alone on core 1, under SCHED_FIFO with BENCH_RT=1.
on_gateway_core() {
    env -i PATH="$PATH" HOME="${HOME:-/root}" FAKE_UPSTREAM_KEY=sk-fake-bench ${TOKIO_WORKER_THREADS:+TOKIO_WORKER_THREADS=$TOKIO_WORKER_THREADS} \
        taskset -c "$CORE_GW" "${RT[@]}" "$@" &
    BENCH_PIDS+=("$!")
}

# launch_null_proxy PORT UPSTREAM-URL LOG: the floor, launched and placed like the gateway;
# waits until it listens. Sets NULL_PID.
launch_null_proxy() {
    local port=$1 upstream=$2 log=$3
    on_gateway_core "$NULL_PROXY" --listen "127.0.0.1:$port" --upstream "$upstream" >"$log" 2>&1 </dev/null
    NULL_PID=${BENCH_PIDS[-1]}
    wait_listening "$log" "null proxy on $port"
}

# write_gateway_config FILE [VARIANT]: the production-like config — client keys required (with
# dollar and token budgets, so every call is priced and charged), audit to a file, metrics on the
# admin port (and the console's sampler), two-target routes over the fake(s), trace export off
# (the default), logs as deploy/config.yaml and the Helm chart write them: JSON at level info, so
# every call's span is recorded and its line written. Needs GW_PORT, ADMIN_PORT, FAKE_PORT,
# SLOW_PORT, DELAY_PORT, KEY_SHA256, AUDIT_FILE. VARIANT takes one feature away (or changes the
# logs), so that bench/feature-cost.sh can measure what each costs alone:
#   deployed (default)  everything above
#   no-auth             no client keys (anonymous calls; no budgets either: they belong to keys)
#   no-budget           the key has no budgets (calls still priced)
#   no-cost             no price for the model (the key keeps its token budget)
#   no-audit            no audit trail
#   log-warn            log level warn: no span recorded, no line for a call that succeeds (the
#                       benchmarks' setting before 2026-11-30's second round)
#   log-text            the lines as text (log.format: text, the config's default) at info
write_gateway_config() {
    local file=$1 variant=${2:-deployed} level=info format=json budget pricing auth audit
    budget="      # Far above what a run spends: checked and charged on every call, never reached.
      budget: {window: month, usd: 1000000, tokens: 1000000000000}"
    pricing="pricing:
  openai_compatible:
    bench-model: {input: 0.15, output: 0.60}"
    auth="auth:
  keys:
    - id: bench
      name: \"bench client\"
      sha256: $KEY_SHA256"
    audit="audit:
  sink: $AUDIT_FILE"
    case $variant in
        deployed) ;;
        no-auth) auth="" budget="" ;;
        no-budget) budget="" ;;
        no-cost) pricing="" budget="      budget: {window: month, tokens: 1000000000000}" ;;
        no-audit) audit="" ;;
        log-warn) level=warn ;;
        log-text) format=text ;;
        *) bench_fail "unknown config variant $variant" ;;
    esac
    [[ -n $auth && -n $budget ]] && auth+=$'\n'$budget
    cat >"$file" <<EOF
server:
  listen: 127.0.0.1:$GW_PORT
  admin_listen: 127.0.0.1:$ADMIN_PORT
  shutdown_grace: 2s
log:
  level: $level
  format: $format
$auth
$pricing
$audit
providers:
  fake_a: {kind: openai_compatible, base_url: "http://127.0.0.1:$FAKE_PORT/v1", api_key_env: FAKE_UPSTREAM_KEY}
  fake_b: {kind: openai_compatible, base_url: "http://127.0.0.1:$FAKE_PORT/v1", api_key_env: FAKE_UPSTREAM_KEY}
  slow_a: {kind: openai_compatible, base_url: "http://127.0.0.1:$SLOW_PORT/v1", api_key_env: FAKE_UPSTREAM_KEY}
  slow_b: {kind: openai_compatible, base_url: "http://127.0.0.1:$SLOW_PORT/v1", api_key_env: FAKE_UPSTREAM_KEY}
  delay_a: {kind: openai_compatible, base_url: "http://127.0.0.1:$DELAY_PORT/v1", api_key_env: FAKE_UPSTREAM_KEY}
  delay_b: {kind: openai_compatible, base_url: "http://127.0.0.1:$DELAY_PORT/v1", api_key_env: FAKE_UPSTREAM_KEY}
routes:
  - name: bench
    targets:
      - {provider: fake_a, model: bench-model}
      - {provider: fake_b, model: bench-model}
  - name: bench-slow
    targets:
      - {provider: slow_a, model: bench-model}
      - {provider: slow_b, model: bench-model}
  - name: bench-delay
    targets:
      - {provider: delay_a, model: bench-model}
      - {provider: delay_b, model: bench-model}
EOF
}

# new_client_key: sets CLIENT_KEY and KEY_SHA256 from `ai-service keygen`.
new_client_key() {
    local out
    out=$("$AI_SERVICE_BIN" keygen --id bench) || bench_fail "ai-service keygen"
    CLIENT_KEY=$(sed -n 's/^key[^:]*: //p' <<<"$out" | head -1)
    KEY_SHA256=$(grep -o 'sha256: [0-9a-f]*' <<<"$out" | head -1 | cut -d' ' -f2)
    [[ -n $CLIENT_KEY && ${#KEY_SHA256} -eq 64 ]] || bench_fail "could not read keygen output: $out"
}

# launch_gateway CONFIG LOG: starts ai-service on core 1 and measures the time from launch to
# the first served Chat call (one JSON line on stdout). Sets GW_PID.
launch_gateway() {
    local config=$1 log=$2 t0
    t0=$(date +%s%N)
    on_gateway_core "$AI_SERVICE_BIN" --config "$config" serve >"$log" 2>&1 </dev/null
    GW_PID=${BENCH_PIDS[-1]}
    pin_load "$LOADGEN" ready --addr "http://127.0.0.1:$GW_PORT" --key "$CLIENT_KEY" --model bench \
        --since-ns "$t0" --max-s 20 || { cat "$log" >&2; bench_fail "gateway did not serve"; }
}

# stop_pid PID: SIGTERM and wait for that one process.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

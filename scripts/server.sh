# Shell helpers to run ai-service instances for the smoke test and the client suites.
# Source it; it defines functions only. Every instance started here is recorded in
# SERVER_PIDS so that `stop_servers` (set it as an EXIT trap) never leaves one behind.

AI_SERVICE_BIN=${AI_SERVICE_BIN:-target/debug/ai-service}
SERVER_PIDS=()

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# free_port: prints a TCP port that was free on 127.0.0.1 a moment ago.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_server ADDR LOG [CONFIG]: starts the binary on ADDR (no keys, echo provider unless
# CONFIG says otherwise) with its admin HTTP port on another free loopback port (so that
# instances never fight over the default 0.0.0.0:9090), logging to LOG, and waits until it
# reports SERVING. Sets LAST_SERVER_PID and LAST_ADMIN_ADDR.
start_server() {
    local addr=$1 log=$2 config=${3:-}
    local args=()
    [[ -n $config ]] && args=(--config "$config")
    LAST_ADMIN_ADDR=127.0.0.1:$(free_port)
    # A clean environment: no provider keys and no stray AI_SERVICE__ overrides reach it.
    env -i PATH="$PATH" HOME="${HOME:-/root}" \
        AI_SERVICE__SERVER__LISTEN="$addr" AI_SERVICE__SERVER__ADMIN_LISTEN="$LAST_ADMIN_ADDR" \
        "$AI_SERVICE_BIN" "${args[@]}" serve >"$log" 2>&1 </dev/null &
    LAST_SERVER_PID=$!
    SERVER_PIDS+=("$LAST_SERVER_PID")
    local i
    for i in $(seq 1 100); do
        if ! kill -0 "$LAST_SERVER_PID" 2>/dev/null; then
            cat "$log" >&2
            fail "ai-service on $addr exited during start (log above)"
        fi
        if "$AI_SERVICE_BIN" healthcheck "$addr" --timeout 500ms >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    cat "$log" >&2
    fail "ai-service on $addr did not become healthy within 10s (log above)"
}

# stop_server PID: SIGTERM, then wait; prints nothing, returns the exit code.
stop_server() {
    local pid=$1 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    return "$rc"
}

# stop_servers: kills whatever start_server started and is still running.
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}

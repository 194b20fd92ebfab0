#!/usr/bin/env bash
# Container smoke test without a container engine: starts the built binary the way the
# image's ENTRYPOINT/CMD would (`ai-service serve`, AI_SERVICE_CONFIG pointing at the
# Kubernetes ConfigMap's config.yaml, an otherwise empty environment, the distroless
# nonroot uid 65532 when run as root), on free 127.0.0.1 ports, then:
#   - probes it as the image HEALTHCHECK and the Kubernetes probes do (gRPC health for ""
#     and aiservice.v1.ChatService; /livez, /readyz, /metrics on the admin port),
#   - makes one Chat call (grpcurl) and expects the echo answer,
#   - sends SIGTERM and expects NOT_SERVING during the drain delay, then exit 0 within
#     shutdown_delay + shutdown_grace.
# Only 127.0.0.1 is touched; every wait is bounded. Run from anywhere; prints a closing line.
#
# AI_SERVICE_BIN: the binary (default target/release/ai-service when built, else
# target/debug/ai-service). GRPCURL: grpcurl to use (default: on PATH or .tools/bin).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

fail() {
    echo "FAIL: smoke: $*" >&2
    [[ -n ${work:-} && -f $work/server.log ]] && { echo "--- server log:" >&2; tail -n 30 "$work/server.log" >&2; }
    exit 1
}

bin=${AI_SERVICE_BIN:-}
if [[ -z $bin ]]; then
    if [[ -x target/release/ai-service ]]; then bin=target/release/ai-service; else bin=target/debug/ai-service; fi
fi
[[ -x $bin ]] || fail "$bin is not built (cargo build --bin ai-service)"
grpcurl=${GRPCURL:-$(command -v grpcurl || echo "$root/.tools/bin/grpcurl")}
[[ -x $grpcurl ]] || fail "grpcurl not found (bash deploy/check.sh installs it into .tools/bin)"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The image's filesystem, as far as the binary sees it: the binary, and the ConfigMap's
# config at the path AI_SERVICE_CONFIG names. World-readable so uid 65532 can use it.
work=$(mktemp -d)
pid=
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/usr/local/bin" "$work/etc/ai-service"
install -m 0755 "$bin" "$work/usr/local/bin/ai-service"
python3 - "$root/deploy/k8s/configmap.yaml" "$work/etc/ai-service/config.yaml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
open(sys.argv[2], "w").write(doc["data"]["config.yaml"])
PY
chmod -R a+rX "$work"

# The pod spec's drain settings, read back from the config, bound the stop below.
read -r delay grace < <(python3 - "$work/etc/ai-service/config.yaml" <<'PY'
import re, sys, yaml
server = yaml.safe_load(open(sys.argv[1]))["server"]
secs = lambda v: int(re.fullmatch(r"(\d+)s", v).group(1))
print(secs(server["shutdown_delay"]), secs(server["shutdown_grace"]))
PY
)

grpc_port=$(free_port)
admin_port=$(free_port)
while [[ $admin_port == "$grpc_port" ]]; do admin_port=$(free_port); done
addr=127.0.0.1:$grpc_port
admin=127.0.0.1:$admin_port
entry="$work/usr/local/bin/ai-service"

# As root, drop to the image's user the way the runtime would (no new privileges, no
# supplementary groups); otherwise run as whoever we are.
as_user=()
user_note="as $(id -un) (not root: setpriv not needed)"
if [[ $(id -u) -eq 0 ]]; then
    if command -v setpriv >/dev/null; then
        as_user=(setpriv --reuid=65532 --regid=65532 --clear-groups --no-new-privs --)
        user_note="as uid 65532 via setpriv"
    else
        user_note="as root (setpriv missing: NOT the image's user)"
    fi
fi

# ENTRYPOINT ["/usr/local/bin/ai-service"] CMD ["serve"], ENV AI_SERVICE_CONFIG; the
# listen overrides stand in for the pod's own network namespace.
(cd "$work" && exec env -i PATH=/usr/local/bin:/usr/bin:/bin \
    AI_SERVICE_CONFIG="$work/etc/ai-service/config.yaml" \
    AI_SERVICE__SERVER__LISTEN="$addr" AI_SERVICE__SERVER__ADMIN_LISTEN="$admin" \
    "${as_user[@]}" "$entry" serve) >"$work/server.log" 2>&1 </dev/null &
pid=$!
echo "smoke: started '$entry serve' (pid $pid) $user_note on $addr, admin $admin"

passed=0
ok() { passed=$((passed + 1)); echo "smoke: ok - $*"; }

# The startup probe: up to 10s for SERVING.
up=0
for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || fail "ai-service exited during start"
    if "$entry" healthcheck "$addr" --timeout 1s >/dev/null 2>&1; then up=1; break; fi
    sleep 0.1
done
[[ $up -eq 1 ]] || fail "not SERVING within 10s"
ok "started and SERVING"

if [[ $(id -u) -eq 0 && ${#as_user[@]} -gt 0 ]]; then
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
    [[ $uid == 65532 ]] || fail "server runs as uid $uid, want 65532"
    ok "runs as uid 65532"
fi

# The image's HEALTHCHECK command, verbatim but for the address.
out=$("$entry" healthcheck "$addr" --timeout 3s) || fail "HEALTHCHECK command failed: $out"
[[ $out == SERVING ]] || fail "HEALTHCHECK printed [$out]"
ok "HEALTHCHECK: ai-service healthcheck $addr"

# What the kubelet's grpc probes ask: "" (startup, liveness) and the chat API (readiness).
for service in "" aiservice.v1.ChatService; do
    out=$("$grpcurl" -plaintext -max-time 3 -d "{\"service\":\"$service\"}" "$addr" grpc.health.v1.Health/Check) ||
        fail "grpc health check of [$service] failed"
    grep -q '"status": "SERVING"' <<<"$out" || fail "grpc health of [$service]: $out"
    ok "grpc.health.v1.Health/Check service=\"$service\": SERVING"
done

http_code() { curl -s -o /dev/null -m 3 -w '%{http_code}' "http://$admin$1" || true; }
for page in /livez /readyz /metrics; do
    code=$(http_code "$page")
    [[ $code == 200 ]] || fail "GET $page: $code"
done
ok "admin port: /livez /readyz /metrics answer 200"

request='{"model":"echo","messages":[{"role":"ROLE_USER","content":[{"text":"hello from the pod"}]}]}'
out=$("$grpcurl" -plaintext -max-time 5 -d "$request" "$addr" aiservice.v1.ChatService/Chat) ||
    fail "Chat failed: $out"
grep -q '"text": "hello from the pod"' <<<"$out" || fail "Chat answered: $out"
ok "Chat via grpcurl answered the echo"

grep -q '^{' "$work/server.log" || fail "no JSON log line (log.format: json)"
ok "logs are JSON lines"

# SIGTERM: NOT_SERVING during the delay while the process still runs, then exit 0.
start=$(date +%s)
kill -TERM "$pid"
drained=0
for _ in $(seq 1 30); do
    if ! "$entry" healthcheck "$addr" --timeout 1s >/dev/null 2>&1; then drained=1; break; fi
    sleep 0.1
done
[[ $drained -eq 1 ]] || fail "still SERVING 3s after SIGTERM"
kill -0 "$pid" 2>/dev/null || fail "exited at once; want it to serve on for shutdown_delay=${delay}s"
code=$(http_code /readyz)
[[ $code == 503 ]] || fail "GET /readyz while draining: $code, want 503"
ok "SIGTERM: NOT_SERVING and /readyz 503 during the drain delay"

limit=$((delay + grace + 5))
rc=
for _ in $(seq 1 $((limit * 10))); do
    if ! kill -0 "$pid" 2>/dev/null; then
        rc=0
        wait "$pid" || rc=$?
        break
    fi
    sleep 0.1
done
[[ -n $rc ]] || fail "still running ${limit}s after SIGTERM"
pid_done=$pid
pid=
[[ $rc -eq 0 ]] || fail "exited $rc after SIGTERM, want 0"
took=$(($(date +%s) - start))
ok "exited 0 ${took}s after SIGTERM (shutdown_delay ${delay}s, limit ${limit}s; pid $pid_done)"

echo "smoke: $passed passed, 0 failed"

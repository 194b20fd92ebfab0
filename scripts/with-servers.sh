#!/usr/bin/env bash
# Runs a command against three running gateways and stops them afterwards, whatever happens:
#   AI_SERVICE_ADDR         no config, no keys: the built-in echo provider as model "echo";
#   AI_SERVICE_FAULTS_ADDR  the error cases that need a configured gateway:
#                           route "slow"    echo with 200ms between deltas (deadline tests);
#                           route "limited" an OpenAI-compatible provider whose upstream
#                                           (scripts/fake-upstream.py) answers every request
#                                           with 429 and Retry-After: 7 (RESOURCE_EXHAUSTED
#                                           with RetryInfo);
#                           route "cut"     the same upstream, whose stream breaks after two
#                                           content chunks;
#                           route "overloaded" the same upstream answering 529 (overloaded),
#                                           through a provider of its own.
#   AI_SERVICE_AUTH_ADDR    client keys required: AI_SERVICE_AUTH_KEY may call every route,
#                           AI_SERVICE_AUTH_OTHER_KEY only route "other" (both echo).
# Usage: scripts/with-servers.sh COMMAND [ARGS...]   (from any directory)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=server.sh
source "$root/scripts/server.sh"
[[ $AI_SERVICE_BIN == /* ]] || AI_SERVICE_BIN=$root/$AI_SERVICE_BIN
[[ -x $AI_SERVICE_BIN ]] || fail "$AI_SERVICE_BIN is missing; run 'cargo build' first"

work=$(mktemp -d)
trap 'stop_servers; rm -rf "$work"' EXIT

python3 "$root/scripts/fake-upstream.py" "$work/upstream.port" &
SERVER_PIDS+=("$!")
for _ in $(seq 1 50); do
    [[ -s $work/upstream.port ]] && break
    sleep 0.1
done
[[ -s $work/upstream.port ]] || fail "the fake upstream did not start"
echo "not-a-real-key" >"$work/upstream.key"

cat >"$work/faults.yaml" <<YAML
providers:
  slow: {kind: echo, chunk_delay: 200ms}
  limited:
    kind: openai
    base_url: http://127.0.0.1:$(cat "$work/upstream.port")/v1
    api_key_file: $work/upstream.key
  overloaded:
    kind: openai
    base_url: http://127.0.0.1:$(cat "$work/upstream.port")/v1
    api_key_file: $work/upstream.key
routes:
  - name: slow
    targets: [{provider: slow, model: echo}]
  - name: limited
    targets: [{provider: limited, model: gpt-fake}]
  - name: cut
    max_retries: 0
    targets: [{provider: limited, model: gpt-cut}]
  - name: overloaded
    max_retries: 0
    targets: [{provider: overloaded, model: gpt-overloaded}]
YAML

# Test-only keys; the gateway stores only their SHA-256.
AI_SERVICE_AUTH_KEY=test-client-key-all-routes
AI_SERVICE_AUTH_OTHER_KEY=test-client-key-route-other
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
cat >"$work/auth.yaml" <<YAML
providers:
  echo: {kind: echo}
routes:
  - name: echo
    targets: [{provider: echo, model: echo}]
  - name: other
    targets: [{provider: echo, model: echo}]
auth:
  keys:
    - {id: all-routes, sha256: $(sha256 "$AI_SERVICE_AUTH_KEY")}
    - {id: route-other, sha256: $(sha256 "$AI_SERVICE_AUTH_OTHER_KEY"), routes: [other]}
YAML

AI_SERVICE_ADDR=127.0.0.1:$(free_port)
start_server "$AI_SERVICE_ADDR" "$work/echo.log"
AI_SERVICE_FAULTS_ADDR=127.0.0.1:$(free_port)
start_server "$AI_SERVICE_FAULTS_ADDR" "$work/faults.log" "$work/faults.yaml"
AI_SERVICE_AUTH_ADDR=127.0.0.1:$(free_port)
start_server "$AI_SERVICE_AUTH_ADDR" "$work/auth.log" "$work/auth.yaml"
export AI_SERVICE_ADDR AI_SERVICE_FAULTS_ADDR AI_SERVICE_AUTH_ADDR AI_SERVICE_AUTH_KEY AI_SERVICE_AUTH_OTHER_KEY
echo "clients: gateways on $AI_SERVICE_ADDR (echo), $AI_SERVICE_FAULTS_ADDR (slow, limited)" \
    "and $AI_SERVICE_AUTH_ADDR (client keys)"

rc=0
"$@" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "--- gateway logs (echo, faults, auth):" >&2
    cat "$work/echo.log" "$work/faults.log" "$work/auth.log" >&2
fi
exit "$rc"

#!/usr/bin/env bash
# Runs a command against two running gateways and stops them afterwards, whatever happens:
#   AI_SERVICE_ADDR         no config, no keys: the built-in echo provider as model "echo";
#   AI_SERVICE_FAULTS_ADDR  the error cases that need a configured gateway:
#                           route "slow"    echo with 200ms between deltas (deadline tests);
#                           route "limited" an OpenAI-compatible provider whose upstream
#                                           (scripts/fake-upstream.py) answers every request
#                                           with 429 and Retry-After: 7 (RESOURCE_EXHAUSTED
#                                           with RetryInfo).
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
routes:
  - name: slow
    targets: [{provider: slow, model: echo}]
  - name: limited
    targets: [{provider: limited, model: gpt-fake}]
YAML

AI_SERVICE_ADDR=127.0.0.1:$(free_port)
start_server "$AI_SERVICE_ADDR" "$work/echo.log"
AI_SERVICE_FAULTS_ADDR=127.0.0.1:$(free_port)
start_server "$AI_SERVICE_FAULTS_ADDR" "$work/faults.log" "$work/faults.yaml"
export AI_SERVICE_ADDR AI_SERVICE_FAULTS_ADDR
echo "clients: gateways on $AI_SERVICE_ADDR (echo) and $AI_SERVICE_FAULTS_ADDR (slow, limited)"

rc=0
"$@" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "--- gateway logs (echo, then faults):" >&2
    cat "$work/echo.log" "$work/faults.log" >&2
fi
exit "$rc"

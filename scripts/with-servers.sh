#!/usr/bin/env bash
# Runs a command against two running gateways and stops them afterwards, whatever happens:
#   AI_SERVICE_ADDR       no config, no keys: the built-in echo provider as model "echo";
#   AI_SERVICE_SLOW_ADDR  an echo provider with 200ms between deltas as route "slow", for
#                         the deadline tests.
# Usage: scripts/with-servers.sh COMMAND [ARGS...]   (from any directory)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=server.sh
source "$root/scripts/server.sh"
[[ $AI_SERVICE_BIN == /* ]] || AI_SERVICE_BIN=$root/$AI_SERVICE_BIN
[[ -x $AI_SERVICE_BIN ]] || fail "$AI_SERVICE_BIN is missing; run 'cargo build' first"

work=$(mktemp -d)
trap 'stop_servers; rm -rf "$work"' EXIT

cat >"$work/slow.yaml" <<'YAML'
providers:
  slow: {kind: echo, chunk_delay: 200ms}
routes:
  - name: slow
    targets: [{provider: slow, model: echo}]
YAML

AI_SERVICE_ADDR=127.0.0.1:$(free_port)
start_server "$AI_SERVICE_ADDR" "$work/echo.log"
AI_SERVICE_SLOW_ADDR=127.0.0.1:$(free_port)
start_server "$AI_SERVICE_SLOW_ADDR" "$work/slow.log" "$work/slow.yaml"
export AI_SERVICE_ADDR AI_SERVICE_SLOW_ADDR
echo "clients: gateways on $AI_SERVICE_ADDR (echo) and $AI_SERVICE_SLOW_ADDR (slow echo)"

rc=0
"$@" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "--- gateway logs (echo, then slow):" >&2
    cat "$work/echo.log" "$work/slow.log" >&2
fi
exit "$rc"

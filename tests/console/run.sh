#!/usr/bin/env bash
# The console in a real browser (make console-test): starts the real gateway binary with
# client keys on, the echo provider (streaming a word every 50 ms) and an OpenAI-compatible
# provider whose fake upstream (scripts/fake-upstream.py) answers 529, so one call ejects its
# endpoint; then runs tests/console/ (Playwright driving Debian's Chromium): the console, and
# the TypeScript client in a page of its own.
# CONSOLE_SCREENSHOTS=DIR also saves screenshots of the console into DIR (docs/console).
# Usage: tests/console/run.sh PYTHON   (from any directory)
set -euo pipefail

python=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../../scripts/server.sh
source "$root/scripts/server.sh"
[[ $AI_SERVICE_BIN == /* ]] || AI_SERVICE_BIN=$root/$AI_SERVICE_BIN
[[ -x $AI_SERVICE_BIN ]] || fail "$AI_SERVICE_BIN is missing; run 'make build' first"
chromium=${CHROMIUM:-$(command -v chromium || true)}
[[ -x $chromium ]] || fail "no chromium on PATH; 'make console-test' installs Debian's package"

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

grpc=127.0.0.1:$(free_port)
admin=127.0.0.1:$(free_port)
# Where test_typescript_client.py serves its page of the TypeScript client.
client_page=127.0.0.1:$(free_port)
# Test-only key; the gateway stores only its SHA-256.
client_key=test-console-key-0123456789abcdef
cat >"$work/console.yaml" <<YAML
server:
  listen: $grpc
  admin_listen: $admin
  # The console's page (the admin port's origin) and the TypeScript client's test page call
  # the gRPC port over gRPC-Web.
  grpc_web: {allowed_origins: ["http://$admin", "http://$client_page"]}
auth:
  keys:
    - {id: console, sha256: $(printf '%s' "$client_key" | sha256sum | cut -d' ' -f1)}
routing: {max_retries: 0, eject_after: 1, eject_cooldown: 10m, eject_cooldown_max: 10m}
providers:
  echo: {kind: echo, chunk_delay: 50ms}
  flaky:
    kind: openai
    base_url: http://127.0.0.1:$(cat "$work/upstream.port")/v1
    api_key_file: $work/upstream.key
routes:
  - name: echo
    targets: [{provider: echo, model: echo}]
  - name: flaky
    targets: [{provider: flaky, model: gpt-overloaded}]
YAML

env -i PATH="$PATH" HOME="${HOME:-/root}" "$AI_SERVICE_BIN" --config "$work/console.yaml" serve \
    >"$work/gateway.log" 2>&1 </dev/null &
SERVER_PIDS+=("$!")
for _ in $(seq 1 100); do
    "$AI_SERVICE_BIN" healthcheck "$grpc" --timeout 500ms >/dev/null 2>&1 && break
    sleep 0.1
done
"$AI_SERVICE_BIN" healthcheck "$grpc" --timeout 500ms >/dev/null || {
    cat "$work/gateway.log" >&2
    fail "the gateway did not become healthy"
}

rc=0
CONSOLE_URL=http://$admin CONSOLE_GRPC=$grpc CLIENT_PAGE=$client_page CONSOLE_KEY=$client_key CHROMIUM=$chromium \
    "$python" -m pytest -p no:cacheprovider -q "$root/tests/console" "${@:2}" || rc=$?
if [[ $rc != 0 ]]; then
    echo "--- gateway log" >&2
    tail -n 50 "$work/gateway.log" >&2
fi
exit "$rc"

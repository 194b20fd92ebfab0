#!/usr/bin/env bash
# Smoke test of the path a user takes: start the debug binary with no config and no keys,
# then call it the way an operator would — grpcurl (list, describe, Chat, StreamChat, Embed,
# health), grpc-health-probe and `ai-service healthcheck` — stop it with SIGTERM and expect
# exit 0; check that grpcurl decodes the error details of a refused call (reflection serves
# their types) and that a misspelt config key is refused (exit 64, field named) before any
# port is bound. Run from the repo root; `make smoke` puts the tools on PATH.
set -euo pipefail

cd "$(dirname "$0")/../.."
# shellcheck source=../../scripts/server.sh
source scripts/server.sh
trap stop_servers EXIT

for tool in grpcurl grpc-health-probe; do
    command -v "$tool" >/dev/null || fail "$tool is not on PATH (run via 'make smoke')"
done
[[ -x $AI_SERVICE_BIN ]] || cargo build --quiet

work=$(mktemp -d)
trap 'stop_servers; rm -rf "$work"' EXIT
port=$(free_port)
addr=127.0.0.1:$port
start_server "$addr" "$work/server.log"
pid=$LAST_SERVER_PID
echo "smoke: ai-service (pid $pid) serving on $addr"

steps=0
step() { steps=$((steps + 1)); echo "smoke: $*"; }
expect() { # expect WHAT PATTERN FILE
    grep -qE -- "$2" "$3" || { echo "--- output:" >&2; cat "$3" >&2; fail "$1: expected /$2/"; }
}
out=$work/out
run() { # run WHAT COMMAND...: the command's output goes to $out; a failure shows it
    local what=$1
    shift
    "$@" >"$out" 2>&1 || { echo "--- output:" >&2; cat "$out" >&2; fail "$what: '$*' exited non-zero"; }
}
refused() { # refused WHAT COMMAND...: like run, for a call that must fail
    local what=$1
    shift
    ! "$@" >"$out" 2>&1 || { echo "--- output:" >&2; cat "$out" >&2; fail "$what: '$*' succeeded"; }
}

step "grpcurl list"
run "list" grpcurl -plaintext "$addr" list
expect "list" '^aiservice\.v1\.ChatService$' "$out"
expect "list" '^aiservice\.v1\.EmbedService$' "$out"
expect "list" '^grpc\.health\.v1\.Health$' "$out"
expect "list" '^grpc\.reflection\.v1(alpha)?\.ServerReflection$' "$out"

step "grpcurl describe aiservice.v1.ChatService"
run "describe" grpcurl -plaintext "$addr" describe aiservice.v1.ChatService
expect "describe" 'rpc Chat \( \.aiservice\.v1\.ChatRequest \) returns \( \.aiservice\.v1\.ChatResponse \)' "$out"
expect "describe" 'rpc StreamChat \( \.aiservice\.v1\.StreamChatRequest \) returns \( stream \.aiservice\.v1\.StreamChatResponse \)' "$out"
expect "describe" 'rpc ListModels' "$out"
expect "describe (comments)" '// Chat returns one complete answer' "$out"

request='{"model":"echo","messages":[{"role":"ROLE_USER","content":[{"text":"hello world"}]}]}'

step "grpcurl Chat"
run "Chat" grpcurl -plaintext -d "$request" "$addr" aiservice.v1.ChatService/Chat
expect "Chat reply" '"text": "hello world"' "$out"
expect "Chat finish" '"finishReason": "FINISH_REASON_STOP"' "$out"
expect "Chat usage" '"outputTokens": 2' "$out"

step "grpcurl StreamChat"
run "StreamChat" grpcurl -plaintext -d "$request" "$addr" aiservice.v1.ChatService/StreamChat
# Each event is one JSON object whose only top-level key (two-space indent) is the event.
events=$(grep -oE '^  "[A-Za-z]+"' "$out" | tr -d ' "' | paste -sd, -)
[[ $events == "contentDelta,contentDelta,usage,finish" ]] ||
    { cat "$out" >&2; fail "StreamChat events: got [$events], want [contentDelta,contentDelta,usage,finish]"; }
text=$(grep -oE '"text": "[^"]*"' "$out" | sed -E 's/"text": "(.*)"/\1/' | tr -d '\n')
[[ $text == "hello world" ]] || fail "StreamChat deltas join to [$text], want [hello world]"
expect "StreamChat finish" '"reason": "FINISH_REASON_STOP"' "$out"

step "grpcurl Chat with reasoning"
reasoning='{"model":"echo","messages":[{"role":"ROLE_USER","content":[{"text":"hello world"}]}],"generation":{"reasoning":{"effort":"REASONING_EFFORT_LOW"}}}'
run "Chat reasoning" grpcurl -plaintext -d "$reasoning" "$addr" aiservice.v1.ChatService/Chat
expect "Chat reasoning part" '"text": "Reasoning about 2 words."' "$out"
expect "Chat reasoning signature" '"signature": "echo-2"' "$out"
expect "Chat reasoning tokens" '"reasoningTokens": 4' "$out"

step "grpcurl Embed"
run "Embed" grpcurl -plaintext -d '{"model":"echo","inputs":["hello","world"],"dimensions":4}' "$addr" aiservice.v1.EmbedService/Embed
expect "Embed second vector" '"index": 1' "$out"
[[ $(grep -c '"values": \[' "$out") == 2 ]] || { cat "$out" >&2; fail "Embed: want two vectors"; }
expect "Embed usage" '"inputTokens": ' "$out"

# grpcurl prints error details as JSON only when reflection serves their types
# (google.rpc.*); otherwise it prints base64.
step "grpcurl decodes ErrorInfo and BadRequest of an INVALID_ARGUMENT"
refused "invalid Chat" grpcurl -plaintext -d '{"model":"echo","messages":[]}' "$addr" aiservice.v1.ChatService/Chat
expect "invalid Chat code" 'Code: InvalidArgument' "$out"
expect "invalid Chat ErrorInfo" '"@type": "type.googleapis.com/google.rpc.ErrorInfo"' "$out"
expect "invalid Chat ErrorInfo reason" '"reason": "INVALID_REQUEST"' "$out"
expect "invalid Chat BadRequest" '"@type": "type.googleapis.com/google.rpc.BadRequest"' "$out"
expect "invalid Chat BadRequest field" '"field": "messages"' "$out"

step "grpcurl grpc.health.v1.Health/Check"
run "health" grpcurl -plaintext -d '{}' "$addr" grpc.health.v1.Health/Check
expect "health (server)" '"status": "SERVING"' "$out"
run "health" grpcurl -plaintext -d '{"service":"aiservice.v1.ChatService"}' "$addr" grpc.health.v1.Health/Check
expect "health (ChatService)" '"status": "SERVING"' "$out"

step "grpc-health-probe"
run "grpc-health-probe" grpc-health-probe -addr "$addr"
expect "grpc-health-probe" 'SERVING' "$out"

step "ai-service healthcheck"
run "ai-service healthcheck" "$AI_SERVICE_BIN" healthcheck "$addr"
expect "ai-service healthcheck" '^SERVING$' "$out"

step "grpcurl decodes RetryInfo of a RESOURCE_EXHAUSTED"
# A second gateway whose only client key may make one call a minute: the second is refused.
"$AI_SERVICE_BIN" keygen --id smoke >"$work/keygen"
key=$(sed -nE 's/^key .*: (ais_[0-9a-f]+)$/\1/p' "$work/keygen")
hash=$(sed -nE 's/.*sha256: ([0-9a-f]{64})\}$/\1/p' "$work/keygen")
printf 'auth:\n  keys:\n    - {id: smoke, sha256: %s, requests_per_minute: 1}\n' "$hash" >"$work/limited.yaml"
limited=127.0.0.1:$(free_port)
start_server "$limited" "$work/limited.log" "$work/limited.yaml"
run "first keyed Chat" grpcurl -plaintext -H "authorization: Bearer $key" -d "$request" "$limited" aiservice.v1.ChatService/Chat
refused "second keyed Chat" grpcurl -plaintext -H "authorization: Bearer $key" -d "$request" "$limited" aiservice.v1.ChatService/Chat
expect "limited Chat code" 'Code: ResourceExhausted' "$out"
expect "limited Chat ErrorInfo reason" '"reason": "RATE_LIMITED"' "$out"
expect "limited Chat RetryInfo" '"@type": "type.googleapis.com/google.rpc.RetryInfo"' "$out"
expect "limited Chat retryDelay" '"retryDelay": "[0-9.]+s"' "$out"

step "SIGTERM exits 0"
rc=0
stop_server "$pid" || rc=$?
[[ $rc -eq 0 ]] || { cat "$work/server.log" >&2; fail "ai-service exited $rc after SIGTERM, want 0"; }

step "a misspelt config key exits 64 naming the field, before binding"
# A second instance holds the port: a binary that bound before validating would fail with
# "address in use" instead of naming the field.
start_server "$addr" "$work/holder.log"
rc=0
env -i PATH="$PATH" AI_SERVICE__SERVER__LISTEN="$addr" AI_SERVICE__SERVER__LISTN=x \
    timeout 10 "$AI_SERVICE_BIN" >"$out" 2>&1 </dev/null || rc=$?
[[ $rc -eq 64 ]] || { cat "$out" >&2; fail "bad config exited $rc, want 64"; }
expect "bad config message" 'server\.listn' "$out"
if grep -qiE 'address (already )?in use|listening' "$out"; then
    cat "$out" >&2
    fail "bad config reached the listener"
fi

echo "smoke: $steps passed, 0 failed"

#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds from the test fixtures and configs, once: the corpus
# then grows with what libFuzzer finds (it is git-ignored; regressions go into tests).
set -euo pipefail
cd "$(dirname "$0")"
fixtures=../tests/fixtures
seed() { # seed TARGET NAME PREFIX-PRINTF-FORMAT FILE
  mkdir -p "corpus/$1"
  { printf "$3"; cat "$4"; } > "corpus/$1/$2"
}
# sse: one byte of piece size, then the stream.
for f in "$fixtures"/*/*.sse; do seed sse "$(basename "$(dirname "$f")")-$(basename "$f")" '\x07' "$f"; done
# provider_reply: byte 0 picks the provider in name order (0 anthropic, 1 bedrock, 2 cohere,
# 3 gemini, 4 openai; +0x80 streams), byte 1 the status (0 is 200).
for p in anthropic:0 cohere:2 gemini:3 openai:4 azure:4; do
  dir=${p%%:*}; i=${p##*:}
  for f in "$fixtures/$dir"/*.json "$fixtures/$dir"/*.html; do
    [ -e "$f" ] && seed provider_reply "$dir-$(basename "$f")" "\\x0$i\\x00" "$f"
  done
  for f in "$fixtures/$dir"/*.sse; do
    [ -e "$f" ] && seed provider_reply "$dir-$(basename "$f")" "\\x8$i\\x00" "$f"
  done
done
# provider_reply, Bedrock (1): the unary reply, and the stream's events as framed records
# (first body byte odd: [type][flags][len][payload] each, see the target).
for f in "$fixtures"/bedrock/*.json; do
  [ "$(basename "$f")" = converse_stream.json ] || seed provider_reply "bedrock-$(basename "$f")" '\x01\x00' "$f"
done
python3 - "$fixtures/bedrock/converse_stream.json" > corpus/provider_reply/bedrock-stream-framed <<'PY'
import json, sys
names = ["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
out = bytearray(b"\x81\x00\x01")
for event in json.load(open(sys.argv[1])):
    payload = json.dumps(event["payload"]).encode()[:255]
    out += bytes([names.index(event["event"]), 0, len(payload)]) + payload
sys.stdout.buffer.write(out)
PY
# config: the documented examples and the deploy values.
mkdir -p corpus/config
for f in ../config*.yaml ../docs/*.yaml ../deploy/*.yaml ../deploy/**/*.yaml; do
  [ -f "$f" ] && cp "$f" "corpus/config/$(echo "$f" | tr / _)"
done
printf 'providers: {p: {kind: openai, api_key_env: K}}\nroutes: [{name: m, targets: [{provider: p, model: gpt-4o}]}]\n' > corpus/config/minimal.yaml
# validate: a few encoded requests come from the fuzzer itself; start from an empty one.
mkdir -p corpus/validate
printf '\x0a\x04echo\x12\x0b\x08\x02\x12\x07\x0a\x05hello' > corpus/validate/one-message
# openai_request: chat completion bodies, plain and with everything the door translates.
mkdir -p corpus/openai_request
printf '{"model":"echo","messages":[{"role":"user","content":"hi"}]}' > corpus/openai_request/plain
printf '%s' '{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"what?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"1"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"},"strict":true}}],"tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"}}},"stop":["x"],"temperature":0.5,"max_tokens":9,"seed":1,"metadata":{"k":"v"},"user":"u"}' > corpus/openai_request/full
# anthropic_request: Messages request bodies, plain and with every block type.
mkdir -p corpus/anthropic_request
printf '{"model":"echo","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}' \
  > corpus/anthropic_request/plain
printf '%s' '{"model":"m","max_tokens":9,"stream":true,"system":[{"type":"text","text":"s"}],"metadata":{"user_id":"u"},"stop_sequences":["X"],"temperature":0.5,"top_p":1,"top_k":3,"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true},"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64","media_type":"image/gif","data":"R0lGODlh"}},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},{"role":"assistant","content":[{"type":"text","text":"b"},{"type":"tool_use","id":"t","name":"f","input":{"k":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":true,"content":[{"type":"text","text":"e"}]}]}]}' \
  > corpus/anthropic_request/everything

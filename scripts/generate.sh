#!/usr/bin/env bash
# Regenerates the committed client stubs from proto/ into OUT (default: the repo root):
#   Go:     OUT/clients/go/aiservicev1/     (buf + local protoc-gen-go, protoc-gen-go-grpc)
#   Python: OUT/clients/python/src/aiservice/v1/  (grpcio-tools' bundled protoc, with .pyi)
#   TypeScript: OUT/clients/typescript/src/gen/  (buf + protoc-gen-es from clients/typescript's
#           node_modules; proto/ and the google.rpc error details of proto-deps/)
# Java is generated at Maven build time and not committed. `make generate` runs this with
# the pinned tools on PATH and PYTHON pointing at the tools venv.
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-.}
python=${PYTHON:-python3}
for tool in buf protoc-gen-go protoc-gen-go-grpc; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is not on PATH; run 'make generate'" >&2; exit 1; }
done
"$python" -c 'import grpc_tools' 2>/dev/null ||
    { echo "FAIL: $python lacks grpcio-tools; run 'make generate'" >&2; exit 1; }
[[ -x clients/typescript/node_modules/.bin/protoc-gen-es ]] ||
    { echo "FAIL: clients/typescript has no protoc-gen-es; run 'make generate'" >&2; exit 1; }

buf generate --template buf.gen.yaml -o "$out"
buf generate --template buf.gen.typescript.yaml -o "$out"

py_out=$out/clients/python/src
mkdir -p "$py_out"
(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort) | while read -r file; do
    "$python" -m grpc_tools.protoc -Iproto \
        --python_out="$py_out" --pyi_out="$py_out" --grpc_python_out="$py_out" \
        "$file"
done

#!/usr/bin/env bash
# Fails when the committed Go, Python or TypeScript stubs differ from what proto/ generates now.
set -euo pipefail

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/generate.sh "$tmp" >/dev/null
stale=0
for dir in clients/go/aiservicev1 clients/python/src/aiservice/v1 clients/typescript/src/gen; do
    # Only generated files: hand-written ones (__init__.py) have no counterpart in $tmp.
    if ! diff -r -x '__init__.py' -x '__pycache__' "$tmp/$dir" "$dir"; then
        stale=1
    fi
done
if [[ $stale -ne 0 ]]; then
    echo "FAIL: the committed client stubs are stale; run 'make generate' and commit the result" >&2
    exit 1
fi
echo "generated stubs are up to date"

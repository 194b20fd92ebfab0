#!/usr/bin/env bash
# Prints each performance target of issue 21 (ratios to the null-proxy floor measured in the
# same run, and the memory and launch limits) with `ok` or `MISS`, for the newest
# bench/results/<stamp>/ (or the run given), and LiteLLM's ratio when compare-litellm.sh's
# results are given too. Not part of `make test`: timings are not tests.
#   bench/check-ratios.sh [RESULTS-DIR-OR-JSONL] [LITELLM-JSONL]
set -euo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
# Only bench/run.sh's runs (a bare stamp), not the other scripts' results beside them.
run=${1:-$(ls -d "$bench"/results/*/ 2>/dev/null | grep -E '/[0-9]{8}T[0-9]{6}Z/$' | sort | tail -1)}
[[ -n $run ]] || { echo "no bench/results/ yet: run 'make bench' first" >&2; exit 2; }
[[ -d $run ]] && run=$run/results.jsonl
exec python3 "$bench/check_ratios.py" "$run" ${2:+"$2"}

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
# Not a target, but what keeps the idle RSS one: a link order written for an older build lays
# the code that runs apart again (issue 21's seventh round: round six's order file with this
# round's code, 7.4 MiB of code resident instead of 4.2). Printed: the names of
# link/ai-service.order that the built binary (AI_SERVICE_BIN, else the release build in
# CARGO_TARGET_DIR or target/) no longer has; bench/link-order.sh writes the file again.
bin=${AI_SERVICE_BIN:-${CARGO_TARGET_DIR:-$bench/../target}/release/ai-service}
order=$bench/../link/ai-service.order
if [[ -x $bin && -f $order ]] && command -v nm >/dev/null; then
    listed=$(grep -vc '^#' "$order" || true)
    stale=$(comm -23 <(grep -v '^#' "$order" | sort) \
        <(nm "$bin" | awk '$2 ~ /[tTwW]/ {print $3}' | sort) | wc -l)
    note=""
    ((stale == 0)) || note=" — stale (the code that runs, laid apart: MiBs more resident): run bench/link-order.sh"
    echo "link order: $stale of $listed names of link/ai-service.order not in $bin$note"
fi
exec python3 "$bench/check_ratios.py" "$run" ${2:+"$2"}

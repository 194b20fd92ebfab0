"""The table of bench/feature-cost.sh: instructions per call of each feature alone.

Usage: feature_cost.py WORK ARG…   (WORK: a bench/callgrind.sh result directory; ARG…: the
arguments callgrind.sh was given, in order: `floor`, BIN, then BIN:VARIANT…)
"""

import json
import re
import subprocess
import sys

work, args = sys.argv[1], sys.argv[2:]
rows = {r["label"]: r for r in map(json.loads, open(f"{work}/results.jsonl"))}


def per_call(i, c):
    """Instructions per call of run `i` at concurrency `c`, less the console sampler's samples:
    they come once a second, and a run under callgrind lasts long enough (and not equally long
    for every run) for them to show in a per-call count."""
    row = rows.get(f"b{i}-grpc-c{c}")
    if not row:
        return None
    if args[i - 1] == "floor":
        return row["instructions_per_call"]
    if "sampler" not in row:
        row["sampler"] = attributed(inclusive(row["dump"]), [SAMPLER])
    return round(row["instructions_per_call"] - row["sampler"] / row["calls"])


index = {arg.split(":", 1)[1] if ":" in arg else ("floor" if arg == "floor" else "deployed"): i
         for i, arg in enumerate(args, 1)}
WHAT = {
    "no-auth": "client key (the presented key's SHA-256, the key table, the record's client)",
    "no-budget": "budgets (checked before, charged after; in-process store)",
    "no-cost": "cost (the price looked up, the bill, its metric and audit fields; the dollar budget)",
    "log-warn": "span fields and the call's JSON log line (as deployed: level info)",
    "log-text": "span fields and the call's log line as text instead of JSON",
}
# Features without a switch, read from the deployed run's own profile: the inclusive count of
# their entry points (each function's largest inclusive figure; the entry points do not call
# one another). The audit trail cannot be turned off (every call leaves a record: stdout by
# default); every metric signal goes through the `Metrics` trait object (rendering excepted:
# that is the console sampler's, and a scrape's).
ATTRIBUTED = {
    "audit (record built and queued, then serialized, redacted and written by the writer task)": [
        r"^ai_service::audit::write_records::\{\{closure\}\}$",
        r"^ai_service::audit::AuditSink::submit$",
        r"^ai_service::audit::AuditSink::admit",
        r"^core::ptr::drop_in_place<ai_service::audit::AuditRecord>$",
    ],
    "metrics (the `Metrics` methods and the exporter's upkeep)": [
        r"^<ai_service::metrics::prometheus::PrometheusMetrics as ai_service::metrics::Metrics>::(?!render)",
        r"^ai_service::metrics::prometheus::upkeep::\{\{closure\}\}$",
    ],
}
SAMPLER = r"^ai_service::console::samples::run::\{\{closure\}\}$"
RENDER = r"^<ai_service::metrics::prometheus::PrometheusMetrics as ai_service::metrics::Metrics>::render$"


def inclusive(dump):
    """Function name -> its largest inclusive instruction count in `dump`."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", dump],
        capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S.*?:(.*?)( \[.*\])?$", line)
        if m:
            n = int(m.group(1).replace(",", ""))
            found[m.group(2)] = max(n, found.get(m.group(2), 0))
    return found


def attributed(found, patterns):
    return sum(n for name, n in found.items() if any(re.search(p, name) for p in patterns))


base = {c: per_call(index["deployed"], c) for c in (1, 16)}
floor = {c: per_call(index.get("floor", 0), c) for c in (1, 16)}
print("\nInstructions per unary gRPC call, each run's console sampler taken out (see below).")
print("\n| feature (instructions per unary gRPC call) | c=1 | c=16 | how |")
print("|---|---|---|---|")
for variant, what in WHAT.items():
    if variant not in index:
        continue
    cost = []
    for c in (1, 16):
        other = per_call(index[variant], c)
        if variant == "log-text" and "log-warn" in index:
            cost.append(other - per_call(index["log-warn"], c))
        elif variant == "no-auth" and "no-budget" in index:
            # Budgets belong to keys: the key alone is the budget-less run less the key-less one.
            cost.append(per_call(index["no-budget"], c) - other)
        else:
            cost.append(base[c] - other)
    how = {"log-text": "`log-text` run − `log-warn` run",
           "no-auth": "`no-budget` run − `no-auth` run"}.get(variant, f"as deployed − `{variant}` run")
    print(f"| {what} | {cost[0]:,} | {cost[1]:,} | {how} |")
profiles = {}
for c in (1, 16):
    row = rows[f"b{index['deployed']}-grpc-c{c}"]
    profiles[c] = (inclusive(row["dump"]), row["calls"], row["dump"])
for what, patterns in ATTRIBUTED.items():
    cost = [round(attributed(profiles[c][0], patterns) / profiles[c][1]) for c in (1, 16)]
    print(f"| {what} | {cost[0]:,} | {cost[1]:,} | the deployed run's profile |")
print(f"| **the gateway as deployed** | {base[1]:,} | {base[16]:,} | |")
if floor[1]:
    print(f"| the floor (null proxy) | {floor[1]:,} | {floor[16]:,} | |")
    print(f"| gateway ÷ floor | {base[1] / floor[1]:.2f} | {base[16] / floor[16]:.2f} | |")
sys.path.insert(0, __import__("os").path.dirname(__file__))
from callcounts import counts  # noqa: E402
found, _, dump = profiles[1]
samples = sum(n for name, n in counts(dump).items() if re.search(RENDER, name))
if samples:
    per = attributed(found, [SAMPLER]) / samples
    print(f"\nThe console's sampler, once a second whatever the load (not per call; under callgrind a "
          f"run lasts longer, so it shows in the per-call counts above, most at c=1): "
          f"{per:,.0f} instructions a sample ({samples} samples in the c=1 run).")

"""Instructions per call of every run of a bench/callgrind.sh result, the console's sampler
taken out: it samples once a second whatever the load, and a run under callgrind lasts long
enough (and not equally long for every binary) for it to show in a per-call count. The same
subtraction bench/feature_cost.py makes, for every row (unary and streams, any binary).

Usage: sampler_out.py WORK…   (bench/callgrind.sh result directories)
Prints `label binary calls instructions_per_call per_call_sampler_out sampler_per_call`.
"""

import json
import os
import re
import subprocess
import sys

SAMPLER = r"^ai_service::console::samples::run::\{\{closure\}\}$"


def sampler(dump):
    """The sampler's inclusive instructions in `dump` (its largest figure)."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no", dump],
        capture_output=True, text=True, check=True).stdout
    found = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S.*?:(.*?)( \[.*\])?$", line)
        if m and re.search(SAMPLER, m.group(2)):
            found = max(found, int(m.group(1).replace(",", "")))
    return found


print("# sampler out: label binary calls instructions_per_call per_call_sampler_out sampler_per_call")
for work in sys.argv[1:]:
    for row in map(json.loads, open(os.path.join(work, "results.jsonl"))):
        taken = 0 if row["binary"] == "floor" else sampler(row["dump"])
        per = round(taken / row["calls"])
        print(row["label"], row["binary"], row["calls"], row["instructions_per_call"],
              row["instructions_per_call"] - per, per)

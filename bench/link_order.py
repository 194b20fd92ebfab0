"""The functions of BINARY that a callgrind dump (made with --demangle=no) saw run, hottest
first (instructions spent in the function itself), as lld's --symbol-ordering-file reads
them: one mangled symbol per line, `#` comments. Used by bench/link-order.sh."""

import re
import subprocess
import sys
from collections import Counter

dump, binary = sys.argv[1], sys.argv[2]
exe = binary.rsplit("/", 1)[-1]

# Callgrind's name compression: `fn=(7) name` defines id 7, a later `fn=(7)` reuses it.
objects, functions = {}, {}
cost = Counter()
current_object = current_fn = None
skip_next = False
for line in open(dump, encoding="utf-8", errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"(c?ob|c?fn|c?fi|c?fl|fe)=\((\d+)\)(?: (.*))?$", line)
    if m:
        kind, ident, name = m.groups()
        table = objects if kind.endswith("ob") else functions if kind.endswith("fn") else None
        if table is not None and name:
            table[ident] = name
        if kind == "ob":
            current_object = objects.get(ident, "")
        elif kind == "fn":
            name = functions.get(ident, "")
            # `'2` marks a recursion level, the same function.
            current_fn = re.sub(r"'\d+$", "", name) if current_object.endswith("/" + exe) else None
        continue
    if line.startswith("calls="):
        skip_next = True  # the next cost line is the call's inclusive cost
        continue
    if line and (line[0].isdigit() or line[0] in "+-*"):
        if skip_next:
            skip_next = False
            continue
        if current_fn:
            fields = line.split()
            if len(fields) >= 2:
                cost[current_fn] += int(fields[-1])

defined = set()
for row in subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    fields = row.split()
    if len(fields) == 3 and fields[1] in "tTWw":
        defined.add(fields[2])
ran = [name for name, _ in sorted(cost.items(), key=lambda kv: (-kv[1], kv[0])) if name in defined]
print("# Written by bench/link-order.sh: the functions a launch and a few calls of each kind")
print("# run, hottest first, for lld's --symbol-ordering-file (see build.rs). Regenerate it;")
print("# do not edit it.")
print("\n".join(ran))

"""Where a callgrind dump's instructions go, per call: the functions costing most by their own
instructions or with what they call, and who calls a function or what it calls. For the dumps
bench/callgrind.sh leaves (`--dump-instr=no`, names compressed); counts are divided by CALLS.

    cg_calls.py DUMP CALLS top [N]              functions by inclusive cost, then by self cost
    cg_calls.py DUMP CALLS callees REGEX [N]    what the matching functions call, by cost
    cg_calls.py DUMP CALLS callers REGEX [N]    who calls the matching functions, by cost

A function's inclusive cost is its own plus that of the calls it makes (a recursive function's
calls of itself count again, as callgrind_annotate counts them).
"""

import collections
import re
import sys

NAME = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")


def load(path):
    """self[fn], calls[(caller, callee)] = [count, inclusive]"""
    names = {}
    own = collections.Counter()
    calls = collections.defaultdict(lambda: [0, 0])
    fn = cfn = None
    pending = None  # call count awaiting its cost line
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        if line.startswith(("fn=", "cfn=")):
            m = NAME.match(line)
            if not m:
                continue
            if m.group(3) is not None:
                names[m.group(2)] = m.group(3)
            name = names.get(m.group(2), m.group(2))
            if m.group(1) == "fn":
                fn = name
            else:
                cfn = name
            continue
        if line.startswith("calls="):
            pending = int(line[6:].split()[0])
            continue
        if line[0].isdigit() or line[0] in "+-*":
            parts = line.split()
            if len(parts) < 2 or fn is None:
                continue
            cost = int(parts[1])
            if pending is not None:
                entry = calls[(fn, cfn)]
                entry[0] += pending
                entry[1] += cost
                pending = None
            else:
                own[fn] += cost
    return own, calls


def main(args):
    if len(args) < 3:
        sys.exit(__doc__)
    path, per, verb = args[0], int(args[1]), args[2]
    own, calls = load(path)
    inclusive = collections.Counter(own)
    for (caller, callee), (_, cost) in calls.items():
        if caller != callee:
            inclusive[caller] += cost
    if verb == "top":
        n = int(args[3]) if len(args) > 3 else 40
        print(f"{'inclusive':>10} {'self':>9}  function (per call)")
        for name, cost in inclusive.most_common(n):
            print(f"{cost / per:10,.0f} {own[name] / per:9,.0f}  {name[:160]}")
        print(f"\n{'self':>9}  function")
        for name, cost in own.most_common(n):
            print(f"{cost / per:9,.0f}  {name[:160]}")
        return
    pattern = re.compile(args[3])
    n = int(args[4]) if len(args) > 4 else 30
    rows = collections.Counter()
    counts = collections.Counter()
    for (caller, callee), (count, cost) in calls.items():
        if verb == "callees" and pattern.search(caller):
            rows[callee] += cost
            counts[callee] += count
        elif verb == "callers" and pattern.search(callee):
            rows[caller] += cost
            counts[caller] += count
    matched = [f for f in inclusive if pattern.search(f)]
    for f in matched[:5]:
        print(f"# {f[:160]}: inclusive {inclusive[f] / per:,.0f}, self {own[f] / per:,.0f}")
    print(f"{'cost':>9} {'calls':>7}  {verb[:-1]}")
    for name, cost in rows.most_common(n):
        print(f"{cost / per:9,.0f} {counts[name] / per:7.2f}  {name[:160]}")


if __name__ == "__main__":
    main(sys.argv[1:])

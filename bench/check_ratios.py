#!/usr/bin/env python3
"""Each performance target of issue 21 against one `bench/run.sh` run: the gateway measured as
deployed (client keys with budgets, cost, audit to a file, metrics, a two-target route) beside
the floor (the null proxy, bench/src/bin/null_proxy.rs) in the same run, medians over rounds.

    bench/check_ratios.py RESULTS.jsonl [LITELLM.jsonl]

Prints one line per target: what was measured, the target, and `ok` or `MISS`; exits 1 when a
target is missed (timings are not tests: this is for people, not for `make test`).
"""

import json
import statistics
import sys
from collections import defaultdict


def load(path):
    groups = defaultdict(list)
    for line in open(path):
        if not line.strip().startswith("{"):
            continue
        r = json.loads(line)
        label = r["label"].rsplit("-r", 1)[0] if "-r" in r["label"] else r["label"]
        groups[(label, r.get("concurrency"))].append(r)
    return groups


def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else None


def main(path, litellm=None):
    g = load(path)
    checks = []  # (what, measured text, target text, ok or None when not measured)

    def check(what, value, target, ok, fmt="{:.2f}"):
        measured = "not in this run" if value is None else fmt.format(value)
        checks.append((what, measured, target, None if value is None else ok(value)))

    for c in (1, 16, 64):
        f, w = g.get(("floor-unary", c)), g.get(("gateway-unary", c))
        ratio = None
        if f and w:
            ratio = med(w, "gw_cpu_us_per_call") / med(f, "gw_cpu_us_per_call")
        check(f"unary gRPC: gateway CPU per call / floor's, c={c}", ratio, "≤ 1.25×",
              lambda v: v <= 1.25, "{:.2f}×")
    f, w = g.get(("floor-unary", 16)), g.get(("gateway-unary", 16))
    check("unary gRPC: throughput / floor's, c=16 (gateway on one core)",
          med(w, "throughput_rps") / med(f, "throughput_rps") if f and w else None,
          "≥ 0.80×", lambda v: v >= 0.8, "{:.2f}×")
    f, w = g.get(("floor-unary", 1)), g.get(("gateway-unary", 1))
    for q, limit in (("p50", 20), ("p99", 50)):
        added = med(w, f"{q}_us") - med(f, f"{q}_us") if f and w else None
        check(f"unary gRPC: added latency beyond the floor's, {q}, c=1", added,
              f"≤ {limit} µs", lambda v, limit=limit: v <= limit, "{:.0f} µs")

    for c in (1, 16, 64):
        f, w = g.get(("floor-stream", c)), g.get(("gateway-stream", c))
        own = med(w, "gw_cpu_us_per_chunk") - med(f, "gw_cpu_us_per_chunk") if f and w else None
        check(f"streams: own CPU per chunk (gateway − floor), c={c}", own, "≤ 1 µs",
              lambda v: v <= 1.0, "{:.2f} µs")
    f, w = g.get(("floor-stream", 1)), g.get(("gateway-stream", 1))
    check("streams: added time to first token beyond the floor's, c=1",
          med(w, "ttft_p50_us") - med(f, "ttft_p50_us") if f and w else None,
          "≤ 30 µs", lambda v: v <= 30, "{:.0f} µs")

    for c in (1, 16, 64):
        h, w = g.get(("gatewayhttp-unary", c)), g.get(("gateway-unary", c))
        check(f"HTTP door: CPU per call / gRPC's, c={c}",
              med(h, "gw_cpu_us_per_call") / med(w, "gw_cpu_us_per_call") if h and w else None,
              "≤ 1.30×", lambda v: v <= 1.3, "{:.2f}×")
    if litellm:
        lg = load(litellm)
        lite, ours = lg.get(("litellm-unary", 16)), lg.get(("ai-service-http-unary", 16))
        check("HTTP door: LiteLLM's CPU per call / ours, c=16 (reported, no target)",
              med(lite, "gw_cpu_us_per_call") / med(ours, "gw_cpu_us_per_call")
              if lite and ours else None, "—", lambda v: True, "{:.0f}×")

    gateway_rows = [r for (label, _), rows in g.items() if label.startswith("gateway")
                    for r in rows]
    idle = med(gateway_rows[:1], "gw_rss_idle_kib") if gateway_rows else None
    check("memory: RSS idle (before the first measured run)",
          idle / 1024 if idle else None, "≤ 15 MiB", lambda v: v <= 15, "{:.1f} MiB")
    loaded = max((r["gw_rss_load_max_kib"] for r in gateway_rows if "gw_rss_load_max_kib" in r),
                 default=None)
    check("memory: RSS under load (largest of every gateway run)",
          loaded / 1024 if loaded else None, "≤ 50 MiB", lambda v: v <= 50, "{:.1f} MiB")
    hold = g.get(("hold", None))
    check("memory: RSS with 1,000 open streams",
          med(hold, "gw_rss_open_max_kib") / 1024 if hold else None, "≤ 60 MiB",
          lambda v: v <= 60, "{:.1f} MiB")
    launch = g.get(("launch", None))
    check("launch to the first served call (median)",
          med(launch, "launch_to_first_call_ms") if launch else None, "≤ 20 ms",
          lambda v: v <= 20, "{:.1f} ms")

    width = max(len(c[0]) for c in checks)
    missed = 0
    for what, measured, target, ok in checks:
        status = "–" if ok is None else ("ok" if ok else "MISS")
        missed += ok is False
        print(f"{what:<{width}}  {measured:>16}  {target:>8}  {status}")
    loads = {r.get("loadavg") for rows in g.values() for r in rows if r.get("loadavg")}
    print(f"load averages during the run: {min(loads) if loads else '?'} … {max(loads) if loads else '?'}")
    print(f"{sum(c[3] is True for c in checks)} met, {missed} missed, "
          f"{sum(c[3] is None for c in checks)} not measured")
    return 1 if missed else 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))

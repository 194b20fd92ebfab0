#!/usr/bin/env python3
"""Summarises bench/run.sh's results.jsonl as Markdown tables: per concurrency, the median
over rounds of each figure, gateway beside direct-to-fake, the added latency, and the
release targets of issue 10 with met/missed."""

import json
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    groups = defaultdict(list)
    for r in rows:
        label = r["label"].rsplit("-r", 1)[0] if "-r" in r["label"] else r["label"]
        groups[(label, r.get("concurrency"))].append(r)
    return rows, groups


def med(rows, key):
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


def main(path):
    rows, g = load(path)
    conc = sorted({c for (_, c) in g if c is not None})
    out = []
    checks = []
    out.append("### Unary Chat (median of rounds; µs unless noted)\n")
    out.append("| c | direct p50 | gateway p50 | added p50 | direct p99 | gateway p99 | added p99 "
               "| direct rps | gateway rps | gw CPU/call (user+sys) | gw RSS idle / load MiB | loadavg |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in conc:
        d, w = g.get(("direct-unary", c), []), g.get(("gateway-unary", c), [])
        if not d or not w:
            continue
        a50 = med(w, "p50_us") - med(d, "p50_us")
        a99 = med(w, "p99_us") - med(d, "p99_us")
        cpu = med(w, "gw_cpu_us_per_call")
        out.append(
            f"| {c} | {med(d,'p50_us'):.0f} | {med(w,'p50_us'):.0f} | **{a50:.0f}** | {med(d,'p99_us'):.0f} "
            f"| {med(w,'p99_us'):.0f} | **{a99:.0f}** | {med(d,'throughput_rps'):.0f} | {med(w,'throughput_rps'):.0f} "
            f"| **{cpu:.1f}** ({med(w,'gw_user_us_per_call'):.0f}+{med(w,'gw_sys_us_per_call'):.0f}) | {med(w,'gw_rss_idle_kib')/1024:.1f} / {med(w,'gw_rss_load_max_kib')/1024:.1f} "
            f"| {w[-1]['loadavg']} |")
        if c == 1:
            checks.append(("added latency p50 at c=1 ≤ 200 µs", a50, a50 <= 200))
            checks.append(("added latency p99 at c=1 ≤ 500 µs", a99, a99 <= 500))
        checks.append((f"gateway CPU per unary call ≤ 50 µs (c={c})", cpu, cpu <= 50))
    out.append("\n### StreamChat, 20 content chunks per stream (median of rounds; µs)\n")
    out.append("| c | direct TTFT p50 | gateway TTFT p50 | added TTFT p50 | added TTFT p99 | direct streams/s "
               "| gateway streams/s | gw CPU/stream | gw CPU/chunk | loadavg |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in conc:
        d, w = g.get(("direct-stream", c), []), g.get(("gateway-stream", c), [])
        if not d or not w:
            continue
        out.append(
            f"| {c} | {med(d,'ttft_p50_us'):.0f} | {med(w,'ttft_p50_us'):.0f} "
            f"| **{med(w,'ttft_p50_us')-med(d,'ttft_p50_us'):.0f}** | **{med(w,'ttft_p99_us')-med(d,'ttft_p99_us'):.0f}** "
            f"| {med(d,'throughput_rps'):.0f} | {med(w,'throughput_rps'):.0f} | {med(w,'gw_cpu_us_per_call'):.1f} "
            f"| **{med(w,'gw_cpu_us_per_chunk'):.2f}** | {w[-1]['loadavg']} |")
    for c in conc:
        d, w = g.get(("direct-delay20", c), []), g.get(("gateway-delay20", c), [])
        if d and w:
            out.append(f"\nUpstream answering after 20 ms, unary, c={c}: direct p50/p99 {med(d,'p50_us'):.0f}/{med(d,'p99_us'):.0f} µs, "
                       f"gateway {med(w,'p50_us'):.0f}/{med(w,'p99_us'):.0f} µs (added **{med(w,'p50_us')-med(d,'p50_us'):.0f}/"
                       f"{med(w,'p99_us')-med(d,'p99_us'):.0f} µs**); {med(d,'throughput_rps'):.0f} vs {med(w,'throughput_rps'):.0f} calls/s; "
                       f"gateway CPU {med(w,'gw_cpu_us_per_call'):.1f} µs per call")
    launch = [r for r in rows if r["label"] == "launch"]
    if launch:
        ms = [r["launch_to_first_call_ms"] for r in launch]
        out.append(f"\nLaunch to first served call (ms, {len(ms)} launches): "
                   + ", ".join(f"{m:.1f}" for m in ms) + f"; median **{statistics.median(ms):.1f}**")
        checks.append(("launch to first served call < 100 ms", statistics.median(ms), statistics.median(ms) < 100))
    for h in (r for r in rows if r["label"] == "hold"):
        mib = h["gw_rss_open_max_kib"] / 1024
        out.append(f"\nOpen streams: {h['open']} of {h['streams']} open (all after {h['all_open_after_s']} s); "
                   f"gateway RSS before {h['gw_rss_before_kib']/1024:.1f} MiB, with them open **{mib:.1f} MiB** "
                   f"({h['gw_rss_per_stream_kib']:.1f} KiB per stream); loadavg {h['loadavg']}")
        if h["streams"] >= 1000:
            checks.append((f"{h['streams']} open streams < 100 MiB RSS", mib, mib < 100 and h["open"] == h["streams"]))
    out.append("\n### Targets\n")
    out.append("| target | measured | |")
    out.append("|---|---|---|")
    for name, val, ok in checks:
        out.append(f"| {name} | {val:.1f} | {'met' if ok else '**missed**'} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])

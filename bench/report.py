#!/usr/bin/env python3
"""Summarises bench/run.sh's results.jsonl as Markdown tables: per concurrency, the median
over rounds of each figure, gateway beside direct-to-fake, the added latency, and the
release targets of issue 10 with met/missed. When the run has them, also the floor (a null
proxy placed and loaded like the gateway: labels floor-*) beside the gateway, with the
difference as ai-service's own cost, and the fake upstream's CPU per call on the load's core
(direct-unary) and alone on the gateway's core (fakealone-unary). Older results without those
lines give the older tables."""

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


def cpu(rows):
    """CPU per call with its user+sys split, e.g. `46.5 (26+21)`."""
    return f"{med(rows,'gw_cpu_us_per_call'):.1f} ({med(rows,'gw_user_us_per_call'):.0f}+{med(rows,'gw_sys_us_per_call'):.0f})"


def floor_tables(g, conc):
    """The gateway against the floor: what any proxy costs here, and what ai-service adds."""
    out = []
    unary = [(c, g[("direct-unary", c)], g[("floor-unary", c)], g[("gateway-unary", c)]) for c in conc
             if g.get(("direct-unary", c)) and g.get(("floor-unary", c)) and g.get(("gateway-unary", c))]
    if unary:
        out.append("\n### Against the floor: a null proxy on the gateway's core (median of rounds; µs)\n")
        out.append("floor = `bench/src/bin/null_proxy.rs` (tonic server, hyper's pooled HTTP/1.1 client, no auth, "
                   "audit, metrics or routing), launched, placed and loaded like the gateway, calling the same fake. "
                   "*added* = minus direct (at c≥16 direct queues on core 0, so only c=1 reads cleanly); "
                   "**own** = gateway − floor, what ai-service costs beyond any proxy here.\n")
        out.append("| c | p50 floor / gateway | added p50 floor / gateway | added p99 floor / gateway | floor rps "
                   "| gateway rps | floor CPU/call (user+sys) | gateway CPU/call (user+sys) | **own CPU/call** |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for c, d, f, w in unary:
            out.append(
                f"| {c} | {med(f,'p50_us'):.0f} / {med(w,'p50_us'):.0f} "
                f"| {med(f,'p50_us')-med(d,'p50_us'):.0f} / {med(w,'p50_us')-med(d,'p50_us'):.0f} "
                f"| {med(f,'p99_us')-med(d,'p99_us'):.0f} / {med(w,'p99_us')-med(d,'p99_us'):.0f} "
                f"| {med(f,'throughput_rps'):.0f} | {med(w,'throughput_rps'):.0f} | {cpu(f)} | {cpu(w)} "
                f"| **{med(w,'gw_cpu_us_per_call')-med(f,'gw_cpu_us_per_call'):.1f}** |")
    stream = [(c, g[("floor-stream", c)], g[("gateway-stream", c)]) for c in conc
              if g.get(("floor-stream", c)) and g.get(("gateway-stream", c))]
    if stream:
        out.append("\nStreamChat against the floor (20 chunks per stream):\n")
        out.append("| c | TTFT p50 floor / gateway | floor CPU/stream | gateway CPU/stream | **own CPU/stream** "
                   "| floor CPU/chunk | gateway CPU/chunk |")
        out.append("|---|---|---|---|---|---|---|")
        for c, f, w in stream:
            out.append(
                f"| {c} | {med(f,'ttft_p50_us'):.0f} / {med(w,'ttft_p50_us'):.0f} | {med(f,'gw_cpu_us_per_call'):.1f} "
                f"| {med(w,'gw_cpu_us_per_call'):.1f} | **{med(w,'gw_cpu_us_per_call')-med(f,'gw_cpu_us_per_call'):.1f}** "
                f"| {med(f,'gw_cpu_us_per_chunk'):.2f} | {med(w,'gw_cpu_us_per_chunk'):.2f} |")
    for c in conc:
        f, w = g.get(("floor-delay20", c), []), g.get(("gateway-delay20", c), [])
        if f and w:
            out.append(f"\nUpstream answering after 20 ms, unary, c={c}: floor p50/p99 {med(f,'p50_us'):.0f}/{med(f,'p99_us'):.0f} µs, "
                       f"gateway {med(w,'p50_us'):.0f}/{med(w,'p99_us'):.0f} µs; CPU per call floor {med(f,'gw_cpu_us_per_call'):.1f}, "
                       f"gateway {med(w,'gw_cpu_us_per_call'):.1f}, **own {med(w,'gw_cpu_us_per_call')-med(f,'gw_cpu_us_per_call'):.1f} µs**")
    fake = [(c, g.get(("direct-unary", c), []), g.get(("fakealone-unary", c), [])) for c in conc]
    fake = [(c, d, a) for c, d, a in fake if a or any("gw_cpu_us_per_call" in r for r in d)]
    if fake:
        out.append("\n### The fake upstream's own CPU per call (µs; a trivial HTTP/1 server, one runtime thread)\n")
        out.append("The same work per call; only the placement differs. The difference is what this machine "
                   "charges for waking a process on a core that went idle.\n")
        out.append("| c | sharing core 0 with the load generator (user+sys) | alone on the gateway's core (user+sys) | p50 alone |")
        out.append("|---|---|---|---|")
        for c, d, a in fake:
            shared = cpu(d) if any("gw_cpu_us_per_call" in r for r in d) else "–"
            alone, p50 = (cpu(a), f"{med(a,'p50_us'):.0f}") if a else ("–", "–")
            out.append(f"| {c} | {shared} | {alone} | {p50} |")
    return out


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
        gw_cpu = med(w, "gw_cpu_us_per_call")
        out.append(
            f"| {c} | {med(d,'p50_us'):.0f} | {med(w,'p50_us'):.0f} | **{a50:.0f}** | {med(d,'p99_us'):.0f} "
            f"| {med(w,'p99_us'):.0f} | **{a99:.0f}** | {med(d,'throughput_rps'):.0f} | {med(w,'throughput_rps'):.0f} "
            f"| **{gw_cpu:.1f}** ({med(w,'gw_user_us_per_call'):.0f}+{med(w,'gw_sys_us_per_call'):.0f}) | {med(w,'gw_rss_idle_kib')/1024:.1f} / {med(w,'gw_rss_load_max_kib')/1024:.1f} "
            f"| {w[-1]['loadavg']} |")
        if c == 1:
            checks.append(("added latency p50 at c=1 ≤ 200 µs", a50, a50 <= 200))
            checks.append(("added latency p99 at c=1 ≤ 500 µs", a99, a99 <= 500))
        checks.append((f"gateway CPU per unary call ≤ 50 µs (c={c})", gw_cpu, gw_cpu <= 50))
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
    out.extend(floor_tables(g, conc))
    http = [(c, g[("gateway-unary", c)], g[("gatewayhttp-unary", c)], g.get(("floor-unary", c), []),
             g.get(("direct-unary", c), [])) for c in conc
            if g.get(("gateway-unary", c)) and g.get(("gatewayhttp-unary", c))]
    if http:
        out.append("\n### The OpenAI-compatible HTTP front door beside gRPC (median of rounds; µs)\n")
        out.append("The same gateway, route and upstream; the calls come as `POST /v1/chat/completions` (HTTP/1.1, "
                   "keep-alive, `Authorization: Bearer`) instead of `ChatService/Chat`.\n")
        out.append("(Added latency: over the direct HTTP call to the same fake.)\n")
        out.append("| c | gRPC p50 / HTTP p50 | HTTP added p50 / p99 | gRPC CPU/call | HTTP CPU/call | **HTTP / gRPC** | HTTP / floor |")
        out.append("|---|---|---|---|---|---|---|")
        for c, w, h, f, d in http:
            ratio = med(h, "gw_cpu_us_per_call") / med(w, "gw_cpu_us_per_call")
            floor = f"{med(h,'gw_cpu_us_per_call')/med(f,'gw_cpu_us_per_call'):.2f}" if f else "–"
            added = (f"{med(h,'p50_us')-med(d,'p50_us'):.0f} / {med(h,'p99_us')-med(d,'p99_us'):.0f}" if d else "–")
            out.append(f"| {c} | {med(w,'p50_us'):.0f} / {med(h,'p50_us'):.0f} | {added} | {cpu(w)} | {cpu(h)} | **{ratio:.2f}** | {floor} |")
            checks.append((f"HTTP front door CPU per call ≤ 1.3× gRPC (c={c})", ratio, ratio <= 1.3))
        streams = [(c, g[("gateway-stream", c)], g[("gatewayhttp-stream", c)]) for c in conc
                   if g.get(("gateway-stream", c)) and g.get(("gatewayhttp-stream", c))]
        for c, w, h in streams:
            ratio = med(h, "gw_cpu_us_per_call") / med(w, "gw_cpu_us_per_call")
            out.append(f"\nStreams through HTTP (SSE), c={c}: TTFT p50 {med(h,'ttft_p50_us'):.0f} µs (gRPC {med(w,'ttft_p50_us'):.0f}); "
                       f"CPU per stream {med(h,'gw_cpu_us_per_call'):.1f} µs (gRPC {med(w,'gw_cpu_us_per_call'):.1f}), **{ratio:.2f}×**")
            checks.append((f"HTTP front door CPU per stream ≤ 1.3× StreamChat (c={c})", ratio, ratio <= 1.3))
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

"""The markdown tables of a bench run, one function per table, each from the results JSON."""

from phases import PHASES

LATENCY_KEYS = ("c1", "c16", "c64", "paced25", "paced50", "paced75")


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def _f(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _errors(r: dict) -> str:
    kinds = r.get("errors_by_kind") or {}
    if not kinds:
        return "0"
    text = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
    missing = r.get("503_without_retry_after", 0)
    return text + (f" ({missing} 503 without Retry-After)" if missing else "")


def _targets(result: dict) -> list[str]:
    return [t for t in ("direct", "gateway", "litellm") if any(t in r for r in
            result["results"].values())]  # fmt: skip


def _closed(result: dict) -> list[tuple[str, dict]]:
    return [(k, result["results"][k]) for k in LATENCY_KEYS if k in result["results"]]


def latency(result: dict) -> str:
    rows = [
        "| scenario | wrk threads/conns | target | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms "
        "| errors by status |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, s in _closed(result):
        for target in _targets(result):
            r = s.get(target)
            if r is None:
                continue
            rows.append(
                f"| {s['name']} | {s['threads']}/{s['connections']} | {target} | {r['rps']:.0f} "
                f"| {_ms(r['p50_us'])} | {_ms(r['p90_us'])} | {_ms(r['p99_us'])} "
                f"| {_ms(r['p999_us'])} | {_errors(r)} |"
            )
    return "\n".join(rows)


def error_samples(result: dict) -> str:
    """The start of the first body of each error status, per scenario and target: what the
    errors were (a 503 that is not the overload refusal, for example)."""
    rows = ["| scenario | target | status | start of the first such body |",
            "| --- | --- | --- | --- |"]  # fmt: skip
    for _, s in [*_closed(result), ("memory", result["results"].get("memory") or {})]:
        for target in _targets(result):
            for status, text in ((s.get(target) or {}).get("error_samples") or {}).items():
                flat = " ".join(text.split()).replace("|", "\\|").replace("`", "'")[:160]
                rows.append(f"| {s['name']} | {target} | {status} | `{flat}` |")
    return "\n".join(rows) if len(rows) > 2 else ""


def added(result: dict) -> str:
    proxies = [t for t in _targets(result) if t != "direct"]
    head = " | ".join(f"{t} added p50 / p90 / p99 / p99.9 ms" for t in proxies)
    rows = [f"| scenario | {head} | in-process overhead p50 / p99 ms (gateway) |"]
    rows.append("| --- | " + " | ".join("---:" for _ in proxies) + " | ---: |")
    for _, s in _closed(result):
        cells = []
        for t in proxies:
            a = s["added"].get(t)
            cells.append(
                " / ".join(f"{a[f'{p}_ms']:.2f}" for p in ("p50", "p90", "p99", "p999"))
                if a
                else "n/a"
            )
        own = s.get("self_reported") or {}
        own_text = f"{own['p50_ms']:.2f} / {own['p99_ms']:.2f} (n={own['rows']})" if own else "n/a"
        rows.append(f"| {s['name']} | " + " | ".join(cells) + f" | {own_text} |")
    return "\n".join(rows)


def saturated_rps(result: dict, target: str) -> float | None:
    rates = [result["results"][k][target]["rps"] for k in ("c16", "c64")
             if k in result["results"] and target in result["results"][k]]  # fmt: skip
    return max(rates) if rates else None


def ratios(result: dict) -> dict:
    g, lite = saturated_rps(result, "gateway"), saturated_rps(result, "litellm")
    out = {"gateway_rps": g, "litellm_rps": lite, "throughput": None, "added_p50_c1": None}
    if g and lite:
        out["throughput"] = g / lite
    c1 = result["results"].get("c1", {}).get("added", {})
    if "gateway" in c1 and "litellm" in c1 and c1["gateway"]["p50_ms"] > 0:
        out["added_p50_c1"] = c1["litellm"]["p50_ms"] / c1["gateway"]["p50_ms"]
    return out


def paced(result: dict) -> str:
    rows = ["| scenario | target | offered req/s | achieved req/s | mean think time ms |",
            "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for key in ("paced25", "paced50", "paced75"):
        s = result["results"].get(key)
        if not s:
            continue
        for target in _targets(result):
            if target in s:
                r = s[target]
                rows.append(f"| {s['name']} | {target} | {s['offered_rps'][target]:.0f} "
                            f"| {r['rps']:.0f} | {r.get('mean_delay_ms', 0):.2f} |")  # fmt: skip
    return "\n".join(rows) if len(rows) > 2 else ""


def streaming(result: dict) -> str:
    s = result["results"].get("stream")
    if not s:
        return ""
    rows = [
        "| target | head p50 / p99 ms | first event p50 / p99 ms | total p50 / p99 ms "
        "| streams | added first event p50 / p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target in _targets(result):
        r = s.get(target)
        if r is None:
            continue
        cells = [
            f"{_f(r[m].get('p50_ms'))} / {_f(r[m].get('p99_ms'))}"
            for m in ("ttfb", "first_event", "total")
        ]
        a = s["added"].get(target)
        add = f"{a['first_event_p50_ms']:.2f} / {a['first_event_p99_ms']:.2f}" if a else "-"
        n = r["first_event"].get("n", 0)
        bad = {k: v for k, v in r["statuses"].items() if k != "200"}
        rows.append(f"| {target} | " + " | ".join(cells) + f" | {n}{f' {bad}' if bad else ''} "
                    f"| {add} |")  # fmt: skip
    return "\n".join(rows)


def memory(result: dict) -> str:
    s = result["results"].get("memory")
    if not s:
        return ""
    rows = [
        "| target | streaming / requested | seconds to open | PSS before MB | PSS with all open MB "
        "| PSS MB per 1,000 streams | RSS MB per 1,000 | not served |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for target in ("gateway", "litellm"):
        r = s.get(target)
        if r is None:
            continue
        failed = {**{f"HTTP {k}": v for k, v in r["statuses"].items() if k != "200"},
                  **r["failures"]}  # fmt: skip
        rows.append(
            f"| {target} | {r['streaming']} / {r['requested']} | {r['seconds_to_open']:.1f} "
            f"| {r['before']['pss_kib'] / 1024:.0f} | {r['during']['pss_kib'] / 1024:.0f} "
            f"| {r['pss_mb_per_1000']:.0f} | {r['rss_mb_per_1000']:.0f} "
            f"| {', '.join(f'{k}: {v}' for k, v in failed.items()) or 'none'} |"
        )
    return "\n".join(rows)


def cpu(result: dict) -> str:
    rows = ["| scenario | target | CPU ms per request, by process group |",
            "| --- | --- | --- |"]  # fmt: skip
    for _, s in _closed(result):
        for target in _targets(result):
            r = s.get(target)
            if r and r.get("cpu_ms_per_request"):
                parts = [f"{k} {v:.2f}" for k, v in r["cpu_ms_per_request"].items()]
                total = sum(r["cpu_ms_per_request"].values())
                rows.append(f"| {s['name']} | {target} | {', '.join(parts)} "
                            f"(total {total:.2f}) |")  # fmt: skip
    return "\n".join(rows)


def phases(result: dict) -> str:
    closed = [(k, s) for k, s in _closed(result) if "phases" in s.get("gateway", {})]
    if not closed:
        return ""
    if not any(s["gateway"]["phases"].get("exposed") for _, s in closed):
        return ("Phase timings: not exposed (the gateway's /metrics has no "
                "`gateway_phase_seconds`).")  # fmt: skip
    names = list(PHASES)
    for _, s in closed:
        names += [p for p in s["gateway"]["phases"]["phases"] if p not in names]
    rows = ["| scenario | " + " | ".join(names) + " |",
            "| --- | " + " | ".join("---:" for _ in names) + " |"]  # fmt: skip
    for _, s in closed:
        got = s["gateway"]["phases"]["phases"]
        cells = [
            f"{got[p]['mean_ms']:.3f} / {_f(got[p]['p50_ms'], 3)} / {_f(got[p]['p99_ms'], 3)}"
            if p in got else "-" for p in names
        ]  # fmt: skip
        rows.append(f"| {s['name']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def gc(result: dict) -> str:
    closed = [(k, s) for k, s in _closed(result) if "phases" in s.get("gateway", {})]
    if not closed:
        return ""
    if not any(s["gateway"]["phases"].get("gc_exposed") for _, s in closed):
        return "GC pauses: not exposed (no `gateway_gc_pause_seconds` on /metrics)."
    rows = ["| scenario | requests | GC pauses by generation: count / total ms |",
            "| --- | ---: | --- |"]  # fmt: skip
    for _, s in closed:
        gens = s["gateway"]["phases"].get("gc", {})
        text = ", ".join(f"gen {g}: {v['pauses']} / {v['total_ms']:.1f}" for g, v in
                         sorted(gens.items())) or "none"  # fmt: skip
        rows.append(f"| {s['name']} | {s['gateway']['requests']} | {text} |")
    return "\n".join(rows)

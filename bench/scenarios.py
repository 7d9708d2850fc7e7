"""The measurements: each scenario runs against every target in turn (direct, gateway, LiteLLM),
so the runs of one scenario are seconds apart and see the same machine.

Scenario names (for --only): c1, c16, c64, paced (25/50/75% of each system's own saturated
throughput), stream (time to first byte and total at c=1), memory (1,000 open slow streams).
"""

import time

import phases
import procs
import streams
import wrk

ALL = ("c1", "c16", "c64", "paced", "stream", "memory")
CLOSED = {
    "c1": {"name": "c=1", "threads": 1, "connections": 1},
    "c16": {"name": "c=16", "threads": 2, "connections": 16},
    "c64": {"name": "c=64", "threads": 2, "connections": 64},
}
PACED_SHARES = (0.25, 0.5, 0.75)
PACED_CONNECTIONS = 16
OPEN_STREAMS = 1000
OPEN_TIMEOUT_S = 60.0  # the slow upstream's streams last longer than this (see run.py)


def cpu_by_group(groups: dict[str, int]) -> dict[str, float]:
    return {name: procs.group_cpu_s(pgid) for name, pgid in groups.items()}


def _print(label: str, target: str, r: dict) -> None:
    errors = ", ".join(f"{k}: {v}" for k, v in r["errors_by_kind"].items()) or "none"
    print(f"  {label:<12} {target:<8} {r['rps']:8.0f} req/s  p50 {r['p50_us'] / 1000:7.2f}  "
          f"p99 {r['p99_us'] / 1000:7.2f}  p99.9 {r['p999_us'] / 1000:7.2f} ms  "
          f"errors {errors}", flush=True)  # fmt: skip


def run_closed(ctx: dict, scenario: dict, secs: float, mean_delay: dict | None = None) -> dict:
    """One wrk measurement per target; CPU per request per process group; the gateway's phase
    histograms and GC pauses as deltas over its run."""
    result = dict(scenario)
    for target in ctx["targets"]:
        groups = ctx["groups"][target]
        cpu_before = cpu_by_group(groups)
        scrape_before = phases.scrape(ctx["gateway_base"]) if target == "gateway" else None
        delay = (mean_delay or {}).get(target, 0.0)
        r = wrk.run(ctx["wrk"], ctx["urls"][target], ctx["keys"][target], ctx["body"],
                    scenario["threads"], scenario["connections"], secs, delay)  # fmt: skip
        cpu_after = cpu_by_group(groups)
        # CPU per request contains no queueing: it compares saturated and paced runs, and
        # shows which process a latency change came from.
        r["cpu_ms_per_request"] = {
            name: (cpu_after[name] - cpu_before[name]) * 1000 / max(r["requests"], 1)
            for name in groups
        }
        if target == "gateway":
            r["phases"] = phases.summarize(scrape_before, phases.scrape(ctx["gateway_base"]))
        if delay:
            r["mean_delay_ms"] = delay
        result[target] = r
        _print(scenario["name"], target, r)
    result["added"] = {t: added(result["direct"], result[t]) for t in ctx["targets"][1:]}
    return result


def added(direct: dict, other: dict) -> dict:
    percentiles = ("p50", "p90", "p99", "p999")
    return {f"{p}_ms": (other[f"{p}_us"] - direct[f"{p}_us"]) / 1000 for p in percentiles}


def saturated_rps(results: dict, target: str) -> float | None:
    rates = [results[k][target]["rps"] for k in ("c16", "c64") if k in results]
    return max(rates) if rates else None


def run_paced(ctx: dict, results: dict, secs: float) -> list[dict]:
    """16 connections, each waiting an exponential think time before every request, the mean
    chosen so that the offered rate is a share of that system's own saturated throughput."""
    out = []
    for share in PACED_SHARES:
        mean_delay, offered = {}, {}
        for target in ctx["targets"]:
            capacity = saturated_rps(results, target)
            offered[target] = capacity * share
            # Each connection's cycle is its think time plus the request's own latency (the
            # c=1 mean when measured).
            own_ms = results["c1"][target]["mean_us"] / 1000 if "c1" in results else 0.0
            cycle_ms = PACED_CONNECTIONS * 1000 / offered[target]
            mean_delay[target] = max(0.001, cycle_ms - own_ms)
        scenario = {"name": f"paced {share:.0%}", "threads": 2,
                    "connections": PACED_CONNECTIONS, "share": share}  # fmt: skip
        r = run_closed(ctx, scenario, secs, mean_delay)
        r["offered_rps"] = offered
        out.append(r)
    return out


def run_stream(ctx: dict, secs: float) -> dict:
    result: dict = {"name": "stream c=1"}
    for target in ctx["targets"]:
        r = streams.sequential(ctx["urls"][target], ctx["keys"][target], ctx["stream_body"], secs)
        result[target] = r
        first, total = r["first_event"], r["total"]
        print(f"  {'stream c=1':<12} {target:<8} first event p50 {first.get('p50_ms', 0):6.2f} "
              f"p99 {first.get('p99_ms', 0):6.2f} ms, total p50 {total.get('p50_ms', 0):6.2f} "
              f"ms (n={first.get('n', 0)}, statuses {r['statuses']})", flush=True)  # fmt: skip
    result["added"] = {}
    for target in ctx["targets"][1:]:
        d, o = result["direct"], result[target]
        result["added"][target] = {
            f"{metric}_{p}": o[metric].get(p, 0.0) - d[metric].get(p, 0.0)
            for metric in ("ttfb", "first_event", "total")
            for p in ("p50_ms", "p99_ms")
        }
    return result


def run_memory(ctx: dict) -> dict:
    """1,000 streams open at once from the slow upstream, through each proxy: the sum of the
    PSS of its process group before, and while all are open."""
    result: dict = {"name": f"{OPEN_STREAMS} open streams", "streams": OPEN_STREAMS}
    for target in ctx["targets"][1:]:
        pgid = ctx["memory_group"][target]
        time.sleep(1.0)
        before = procs.group_memory_kib(pgid)
        r = streams.hold_open(ctx["urls"][target], ctx["keys"][target], ctx["slow_body"],
                              OPEN_STREAMS, OPEN_TIMEOUT_S,
                              lambda pgid=pgid: procs.group_memory_kib(pgid))  # fmt: skip
        during = r.pop("measured")
        served = max(r["streaming"], 1)
        r["before"], r["during"] = before, during
        r["pss_mb_per_1000"] = (during["pss_kib"] - before["pss_kib"]) / 1024 * 1000 / served
        r["rss_mb_per_1000"] = (during["rss_kib"] - before["rss_kib"]) / 1024 * 1000 / served
        r["all_served"] = r["streaming"] == OPEN_STREAMS
        result[target] = r
        print(f"  {'streams':<12} {target:<8} {r['streaming']}/{OPEN_STREAMS} streaming after "
              f"{r['seconds_to_open']:.1f} s; PSS {before['pss_kib'] / 1024:.0f} -> "
              f"{during['pss_kib'] / 1024:.0f} MB = {r['pss_mb_per_1000']:.0f} MB per 1,000 "
              f"(statuses {r['statuses']}, failures {r['failures'] or 'none'})",
              flush=True)  # fmt: skip
        time.sleep(2.0)  # the proxies end their upstream streams after the client closes
    return result


def warm_up(ctx: dict, secs: float) -> None:
    print(f"warming up ({secs:g} s per target)", flush=True)
    for target in ctx["targets"]:
        wrk.run(ctx["wrk"], ctx["urls"][target], ctx["keys"][target], ctx["body"], 2, 16, secs)
        streams.sequential(ctx["urls"][target], ctx["keys"][target], ctx["stream_body"], 1.0)


def measure(ctx: dict, only: set[str], secs: float) -> dict:
    """Every selected scenario, in order; paced needs a saturated run, so it brings c16 along."""
    if "paced" in only and not only & {"c16", "c64"}:
        only = only | {"c16"}
    results: dict = {}
    for key in ("c1", "c16", "c64"):
        if key in only:
            results[key] = run_closed(ctx, CLOSED[key], secs)
    if "paced" in only:
        for r in run_paced(ctx, results, secs):
            results[f"paced{round(r['share'] * 100)}"] = r
    if "stream" in only:
        results["stream"] = run_stream(ctx, secs)
    if "memory" in only and len(ctx["targets"]) > 1:
        results["memory"] = run_memory(ctx)
    return results

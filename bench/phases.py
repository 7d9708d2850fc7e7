"""Per-phase timings and GC pauses from the gateway's /metrics, as deltas over one scenario.

The gateway exposes `gateway_phase_seconds{phase=...}` and `gateway_gc_pause_seconds{generation=
...}` histograms (loopback may scrape without a token). Scraped before and after a measurement,
the difference of the cumulative buckets, sums and counts belongs to that measurement alone:
the mean is exact (sum/count), p50 and p99 are interpolated within a bucket, so approximate.
A gateway without these metrics is reported as "not exposed"; that never fails the bench.
"""

import math

import procs
from prometheus_client.parser import text_string_to_metric_families

PHASE_METRIC = "gateway_phase_seconds"
GC_METRIC = "gateway_gc_pause_seconds"
PHASES = ("parse", "auth", "policy", "admission", "upstream", "respond", "settle")


def scrape(base_url: str) -> dict | None:
    """{metric: {label value: {"buckets": {le: n}, "sum": s, "count": n}}}, or None when
    /metrics cannot be read."""
    try:
        status, _, body = procs.http(base_url + "/metrics", timeout=10)
    except OSError:
        return None
    if status != 200:
        return None
    return parse(body.decode())


def parse(text: str) -> dict:
    """The two histograms out of a Prometheus text exposition."""
    label_of = {PHASE_METRIC: "phase", GC_METRIC: "generation"}
    out: dict = {name: {} for name in label_of}
    for family in text_string_to_metric_families(text):
        if family.name not in label_of:
            continue
        for sample in family.samples:
            key = sample.labels.get(label_of[family.name], "")
            entry = out[family.name].setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
            if sample.name.endswith("_bucket"):
                entry["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                entry["sum"] = sample.value
            elif sample.name.endswith("_count"):
                entry["count"] = sample.value
    return out


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Linear interpolation in cumulative (le, count) buckets, as Prometheus does."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return prev_le  # above the highest finite bound: that bound is all we know
            width = n - prev_n
            return prev_le + (le - prev_le) * ((rank - prev_n) / width if width else 0.0)
        prev_le, prev_n = le, n
    return prev_le


def _delta(before: dict, after: dict) -> dict:
    buckets = sorted(
        (le, n - before.get("buckets", {}).get(le, 0.0)) for le, n in after["buckets"].items()
    )
    return {
        "count": after["count"] - before.get("count", 0.0),
        "sum": after["sum"] - before.get("sum", 0.0),
        "buckets": buckets,
    }


def summarize(before: dict | None, after: dict | None) -> dict:
    """Per phase: count, mean, ~p50, ~p99 (ms); GC: pauses and total pause time per generation."""
    if before is None or after is None:
        return {"exposed": False, "reason": "/metrics could not be scraped"}
    result: dict = {"exposed": bool(after[PHASE_METRIC]), "phases": {}, "gc": {}}
    result["gc_exposed"] = bool(after[GC_METRIC])
    for phase, entry in after[PHASE_METRIC].items():
        d = _delta(before[PHASE_METRIC].get(phase, {}), entry)
        if d["count"] <= 0:
            continue
        p50, p99 = _quantile(d["buckets"], 0.5), _quantile(d["buckets"], 0.99)
        result["phases"][phase] = {
            "count": int(d["count"]),
            "mean_ms": d["sum"] / d["count"] * 1000,
            "p50_ms": None if p50 is None else p50 * 1000,
            "p99_ms": None if p99 is None else p99 * 1000,
        }
    for generation, entry in after[GC_METRIC].items():
        d = _delta(before[GC_METRIC].get(generation, {}), entry)
        result["gc"][generation] = {"pauses": int(d["count"]), "total_ms": d["sum"] * 1000}
    return result

"""bench/phases.py: per-scenario phase timings and GC pauses from two /metrics scrapes.

The bench reads the gateway's histograms as deltas between a scrape before and one after a
measurement; a wrong delta or quantile would put wrong numbers in docs/performance.md.
"""

import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import phases

BUCKETS = (0.001, 0.002, 0.005, 0.01)


def _registry():
    registry = CollectorRegistry()
    phase = Histogram("gateway_phase_seconds", "", ["phase"], buckets=BUCKETS, registry=registry)
    gc = Histogram("gateway_gc_pause_seconds", "", ["generation"], registry=registry)
    return registry, phase, gc


def test_deltas_belong_to_the_measurement_only():
    registry, phase, gc = _registry()
    for _ in range(50):  # before the measurement: must not count
        phase.labels("auth").observe(0.009)
    before = phases.parse(generate_latest(registry).decode())
    for _ in range(100):
        phase.labels("auth").observe(0.0015)  # all in the (1 ms, 2 ms] bucket
    phase.labels("upstream").observe(0.004)
    gc.labels("2").observe(0.003)
    gc.labels("2").observe(0.005)
    after = phases.parse(generate_latest(registry).decode())

    result = phases.summarize(before, after)

    assert result["exposed"] and result["gc_exposed"]
    auth = result["phases"]["auth"]
    assert auth["count"] == 100
    assert auth["mean_ms"] == pytest.approx(1.5)
    # Interpolated inside (1, 2] ms: half the bucket's observations lie below its middle.
    assert auth["p50_ms"] == pytest.approx(1.5)
    assert auth["p99_ms"] == pytest.approx(1.99)
    assert result["phases"]["upstream"]["count"] == 1
    assert result["gc"]["2"] == {"pauses": 2, "total_ms": pytest.approx(8.0)}


def test_a_gateway_without_the_metrics_is_reported_not_exposed():
    registry = CollectorRegistry()
    Histogram("gateway_request_seconds", "", registry=registry).observe(0.1)
    text = generate_latest(registry).decode()

    result = phases.summarize(phases.parse(text), phases.parse(text))

    assert result["exposed"] is False
    assert result["gc_exposed"] is False
    assert phases.summarize(None, None)["exposed"] is False

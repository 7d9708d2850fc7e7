"""Phase timings, GC pauses and snapshot build times (gateway/proxy/phases.py, gcstats.py,
batched.py, infra/snapshot.py) and the GC settings (gateway/gctune.py), without a server."""

import gc
import time

import pytest
from django.test import override_settings
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway import gctune
from gateway.proxy import batched, gcstats, phases
from gateway.proxy.context import RequestContext
from infra import snapshot

BUCKETS = (0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0)
SECONDS = (0.0, 0.00001, 0.00002, 0.0001, 0.0005, 0.001, 0.003, 0.01, 0.5, 1.0, 2.0, 40.0)


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("t_seconds", "test", ["phase"], buckets=BUCKETS, registry=registry)


def test_a_batched_flush_exposes_what_as_many_observes_would():
    direct_registry, batched_registry = CollectorRegistry(), CollectorRegistry()
    direct = _histogram(direct_registry)
    counted = batched.BatchedHistogram(_histogram(batched_registry), BUCKETS, ("a", "b"))
    try:
        for index, seconds in enumerate(SECONDS):
            label = index % 2
            direct.labels(("a", "b")[label]).observe(seconds)
            counted.observe(label, seconds)
        counted.flush()
        counted.flush()  # nothing new: nothing added twice
        assert generate_latest(batched_registry) == generate_latest(direct_registry)

        # Later observations are added to what the first flush wrote.
        direct.labels("b").observe(0.002)
        counted.observe(1, 0.002)
        counted.flush()
        assert generate_latest(batched_registry) == generate_latest(direct_registry)
    finally:
        batched._all.remove(counted)


def test_phases_are_timed_between_marks_and_only_entered_ones_count():
    ctx = RequestContext("chat.completions", started=time.perf_counter())
    time.sleep(0.002)
    ctx.enter(phases.AUTH)
    time.sleep(0.001)
    ctx.enter(phases.POLICY)
    ctx.enter(phases.PARSE)  # parse again: both stretches add up
    time.sleep(0.002)
    ctx.enter(None)
    ctx.enter(phases.RESPOND)  # nothing was in progress: nothing is charged
    ctx.enter(None)

    spent = dict(zip(phases.NAMES, ctx.phase_s, strict=True))
    assert spent["parse"] >= 0.004
    assert 0.001 <= spent["auth"] < spent["parse"]
    assert spent["policy"] < 0.001
    assert spent["respond"] < 0.001
    assert spent["admission"] is spent["upstream"] is spent["settle"] is None


def _counts(histogram: batched.BatchedHistogram, index: int) -> int:
    return sum(histogram.counts[index])


def test_observing_phases_counts_each_phase_that_ran_once():
    before = [_counts(phases._BATCHED, i) for i in range(len(phases.NAMES))]

    phases.observe([0.001, 0.0002, None, None, None, None, None])

    after = [_counts(phases._BATCHED, i) for i in range(len(phases.NAMES))]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 0, 0, 0, 0, 0]


def test_the_gc_hook_times_a_collection_by_its_generation():
    before = _counts(gcstats._BATCHED, 1), gcstats._BATCHED.sums[1]

    gcstats.pause_callback("start", {"generation": 1})
    time.sleep(0.003)
    gcstats.pause_callback("stop", {"generation": 1, "collected": 0, "uncollectable": 0})

    assert _counts(gcstats._BATCHED, 1) == before[0] + 1
    assert gcstats._BATCHED.sums[1] - before[1] >= 0.003


def test_the_gc_hook_is_installed_once_and_counts_real_collections():
    gcstats.install()
    gcstats.install()
    try:
        assert gc.callbacks.count(gcstats.pause_callback) == 1
        before = _counts(gcstats._BATCHED, 2)
        gc.collect()
        assert _counts(gcstats._BATCHED, 2) == before + 1
    finally:
        gc.callbacks.remove(gcstats.pause_callback)


class _Table:
    def __init__(self) -> None:
        self.built_at = time.monotonic()


def test_each_snapshot_build_is_reported_under_its_short_name():
    seen = []
    snapshot.set_build_observer(lambda name, seconds: seen.append((name, seconds)))
    try:
        cache = snapshot.SnapshotCache("policy table", lambda: time.sleep(0.002) or _Table(), float)
        cache.ensure_built()
    finally:
        snapshot.set_build_observer(None)

    [(name, seconds)] = seen
    assert name == "policy"
    assert seconds >= 0.002


@pytest.mark.parametrize(
    ("value", "expected"),
    [("700,10,10", (700, 10, 10)), (" 50000, 20 ,100", (50000, 20, 100)), ("1000", (1000,))],
)
def test_thresholds_parse_as_gc_set_threshold_takes_them(value, expected):
    assert gctune.parse_threshold(value) == expected


@pytest.mark.parametrize("value", ["", "700,10,10,10", "700;10", "abc", "0,10,10", "700,-1"])
def test_a_malformed_threshold_fails_the_system_check(value):
    with override_settings(GATEWAY_GC_THRESHOLD=value):
        [error] = gctune.check_gc(None)
    assert error.id == "gateway.E200"
    assert "GATEWAY_GC_THRESHOLD" in error.msg


def test_the_default_threshold_passes_the_check():
    assert gctune.check_gc(None) == []


def test_apply_sets_the_thresholds_and_freezes_start_ups_objects():
    previous = gc.get_threshold()
    try:
        with override_settings(GATEWAY_GC_THRESHOLD="12345,11,12", GATEWAY_GC_FREEZE=True):
            gctune.apply()
        assert gc.get_threshold() == (12345, 11, 12)
        assert gc.get_freeze_count() > 0
        assert gcstats.pause_callback in gc.callbacks
    finally:
        gc.unfreeze()
        gc.set_threshold(*previous)
        gc.callbacks.remove(gcstats.pause_callback)


def test_apply_without_freeze_leaves_the_heap_unfrozen():
    previous = gc.get_threshold()
    gc.unfreeze()
    try:
        with override_settings(GATEWAY_GC_FREEZE=False):
            gctune.apply()
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*previous)
        gc.callbacks.remove(gcstats.pause_callback)

"""Garbage collection pauses, timed by a `gc.callbacks` hook and exposed as a histogram.

A collection stops the whole process (the event loop included), so each pause is latency added
to every request in flight at that moment: the tail, not the median.

The hook only counts into lists (batched.py); it never observes the prometheus_client histogram
itself. In multiprocess mode every value is written under one process-wide, non-reentrant lock
(prometheus_client's MmapedValue), and a collection can start while this very thread holds it
(an allocation inside a metric update): observing from the hook would then deadlock the process.
"""

import gc
import time

from prometheus_client import Histogram

from .batched import FINE_BUCKETS, BatchedHistogram

BUCKETS = FINE_BUCKETS

GC_PAUSE_SECONDS = Histogram(
    "gateway_gc_pause_seconds",
    "Garbage collection pauses of the web processes, by generation (0, 1, 2).",
    ["generation"],
    buckets=BUCKETS,
)
_BATCHED = BatchedHistogram(GC_PAUSE_SECONDS, BUCKETS, ("0", "1", "2"))
_started = 0.0


def pause_callback(phase: str, info: dict) -> None:
    """A `gc.callbacks` hook: the time from a collection's start to its stop."""
    global _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        _BATCHED.observe(info["generation"], time.perf_counter() - _started)


def install() -> None:
    """Time this process's collections (once; later calls do nothing)."""
    if pause_callback not in gc.callbacks:
        gc.callbacks.append(pause_callback)

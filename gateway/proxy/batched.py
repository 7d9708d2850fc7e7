"""Histograms observed in plain Python lists on the hot path, written to prometheus_client in
batches.

In multiprocess mode one `Histogram.observe` costs two writes to a memory-mapped file under a
process-wide lock (prometheus_client's MmapedValue): measured at several µs each, so observing
seven request phases one by one cost ~8x a whole batch of in-list counts. Here an observation
is a bisect and two list increments; `flush()` adds the counts gathered since the last flush to
the histogram's children, one write per bucket that moved. The server flushes every
FLUSH_INTERVAL_S (gateway/asgi.py's lifespan) and on each scrape of /metrics, so a scrape sees
its own process's values exactly and other processes' at most that interval late.

Flushing adds to the children's bucket and sum values directly (`_buckets`, `_sum`): the
exposition is then exactly what as many `observe` calls would have produced
(tests/test_phase_metrics.py compares the two).

Safe from a `gc.callbacks` hook: an observation touches only lists, never prometheus_client's
non-reentrant lock, and a flush subtracts what it read rather than zeroing, so an observation
made by a hook in the middle of a flush is kept for the next one.
"""

import asyncio
import contextlib
import logging
from bisect import bisect_left

from prometheus_client import Histogram

log = logging.getLogger("gateway.metrics")

FLUSH_INTERVAL_S = 1.0

# Seconds, 10 µs to 1 s in 1-2.5-5 steps: fine enough for the gateway's own work (the whole
# overhead is ~1 ms) and for GC pauses (a young collection takes tens of µs, a full one of a
# large heap tens of ms).
FINE_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


class BatchedHistogram:
    """One labelled histogram (one label, its values fixed up front), observed by index."""

    def __init__(self, histogram: Histogram, buckets: tuple[float, ...], values: tuple[str, ...]):
        self.histogram = histogram
        self.buckets = buckets
        self.values = values
        # Per label value: a count per bucket (the last one +Inf), and the sum.
        self.counts = [[0] * (len(buckets) + 1) for _ in values]
        self.sums = [0.0] * len(values)
        self.pending = False
        self._children: tuple = ()
        _all.append(self)

    def observe(self, index: int, seconds: float) -> None:
        # Prometheus buckets are `le`: the first bound >= the value.
        self.counts[index][bisect_left(self.buckets, seconds)] += 1
        self.sums[index] += seconds
        self.pending = True

    def flush(self) -> None:
        if not self.pending:
            return
        self.pending = False
        # Bound at the first flush, not at import: in multiprocess mode a child opens its file,
        # and gateway/proxy/metrics.py creates the directory first. Every label value at once,
        # so each shows (at zero) from the first flush on.
        if not self._children:
            self._children = tuple(self.histogram.labels(value) for value in self.values)
        for index, (child, counts) in enumerate(zip(self._children, self.counts, strict=True)):
            for bucket, count in enumerate(counts):
                if count:
                    counts[bucket] -= count
                    child._buckets[bucket].inc(count)
            total = self.sums[index]
            if total:
                self.sums[index] -= total
                child._sum.inc(total)


_all: list[BatchedHistogram] = []


def flush_all() -> None:
    for histogram in _all:
        histogram.flush()


async def flush_periodically(interval_s: float = FLUSH_INTERVAL_S) -> None:
    """Flush every `interval_s` until cancelled (the server's lifespan runs it), then once more."""
    try:
        while True:
            await asyncio.sleep(interval_s)
            try:
                flush_all()
            except Exception:
                log.exception("writing batched metrics failed")
    finally:
        with contextlib.suppress(Exception):
            flush_all()

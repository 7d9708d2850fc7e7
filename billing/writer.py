"""The embedded default's usage writer: a background thread that batches inserts.

Production uses the Redis stream and the Celery consumer (billing/ingest.py) instead. This one
lives in the web process, so events still queued when the process is killed are lost; that is
one of the reasons the embedded default is for trying the gateway, not for running it.

A batch the database refuses is retried a few times (a locked SQLite file, a restarting
database), then appended to the usage spool (infra/spool.py), which the web process replays
into this writer later. An event the database refuses on its own (bad data, not an outage) is
logged with its request id and dropped, rather than replayed forever.
"""

import atexit
import logging
import queue
import threading
import time

from django.conf import settings
from django.db import DataError, IntegrityError, close_old_connections

from infra import usage_event
from infra.spool import get_spool

from . import retention, rollups
from .services import usage_records_ingest

# The embedded default runs no Celery beat: this thread also runs the rollup and retention
# passes on their schedule (billing/rollups.py, billing/retention.py), between batches, so the
# analytics pages of `make run` fill without a worker.
_MAINTENANCE = (
    ("rollup", "GATEWAY_ROLLUP_INTERVAL_S", rollups.rollup_usage),
    ("retention", "GATEWAY_RETENTION_INTERVAL_S", retention.purge),
)

log = logging.getLogger(__name__)
_STOP = object()


# Waits between attempts at one batch; then it goes to the spool.
RETRY_DELAYS_S = (0.5, 2.0)
# What a bad event (not an unreachable database) raises on its way into a row.
_BAD_EVENT = (DataError, IntegrityError, ValueError, TypeError, ArithmeticError)


def _store_each(events: list[usage_event.UsageEvent]) -> None:
    """One event spoiled the batch: store the others, log and drop that one."""
    for event in events:
        try:
            usage_records_ingest(events=[event])
        except _BAD_EVENT:
            log.exception("dropping usage event %s: the database refuses it", event.request_id)


class UsageWriter:
    def __init__(
        self,
        batch_size: int = 500,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
        first_maintenance_s: float = 60.0,
    ) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._batch_size = batch_size
        # Monotonic due time of each maintenance pass; the first runs soon after start.
        first = time.monotonic() + first_maintenance_s
        self._due = {name: first for name, *_ in _MAINTENANCE}
        self._retry_delays_s = retry_delays_s
        self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def submit(self, event: bytes) -> None:
        self._queue.put(event)

    def _drain(self, first) -> list[bytes]:
        batch = [first]
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _maintain(self) -> None:
        """Run each maintenance pass that is due; a failure waits for the next interval."""
        now = time.monotonic()
        for name, interval_setting, run in _MAINTENANCE:
            if now < self._due[name]:
                continue
            self._due[name] = now + getattr(settings, interval_setting)
            try:
                run()
            except Exception:
                log.exception("usage writer: the %s pass failed", name)
            finally:
                close_old_connections()

    def _next_due_s(self) -> float:
        return max(0.0, min(self._due.values()) - time.monotonic())

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._next_due_s())
            except queue.Empty:
                self._maintain()
                continue
            if item is _STOP:
                return
            batch = self._drain(item)
            stop = _STOP in batch
            try:
                self._write([e for e in batch if e is not _STOP])
            except Exception:
                # Never let the thread die: every later event would queue up unwritten.
                log.exception("usage writer failed on a batch of %d", len(batch))
            finally:
                # Between batches the thread holds no connection (with a pool, it goes back).
                close_old_connections()
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return
            self._maintain()

    def _write(self, raw: list[bytes]) -> None:
        events = []
        for record in raw:
            try:
                events.append(usage_event.decode(record))
            except (usage_event.DecodeError, usage_event.ValidationError) as exc:
                log.error("usage writer: dropping an unreadable event: %s", exc)
        for delay in (*self._retry_delays_s, None):
            try:
                close_old_connections()
                usage_records_ingest(events=events)
                return
            except _BAD_EVENT:
                _store_each(events)
                return
            except Exception as exc:
                if delay is None:
                    break
                log.warning("usage writer: %d events not stored (%s); retrying", len(raw), exc)
                time.sleep(delay)
        try:
            spool = get_spool()
            for record in raw:
                spool.append(record)
        except OSError:
            log.exception("usage writer lost %d events: the spool refused them", len(raw))
            return
        log.error("usage writer could not store %d events; spooled for replay", len(raw))

    def flush(self) -> None:
        """Block until every submitted event has been written (tests, shutdown)."""
        self._queue.join()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)


_writer: UsageWriter | None = None
_lock = threading.Lock()


def get_writer() -> UsageWriter:
    global _writer
    if _writer is None:
        with _lock:
            if _writer is None:
                _writer = UsageWriter()
    return _writer


def submit_event(event: bytes) -> None:
    get_writer().submit(event)

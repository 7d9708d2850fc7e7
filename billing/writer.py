"""The embedded default's usage writer: a background thread that batches inserts.

Production uses the Redis stream and the Celery consumer (billing/ingest.py) instead. This one
lives in the web process, so events still queued when the process is killed are lost; that is
one of the reasons the embedded default is for trying the gateway, not for running it.
"""

import atexit
import logging
import queue
import threading

from django.db import close_old_connections

from infra import usage_event

from .services import usage_records_ingest

log = logging.getLogger(__name__)
_STOP = object()


class UsageWriter:
    def __init__(self, batch_size: int = 500) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._batch_size = batch_size
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

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = self._drain(item)
            stop = _STOP in batch
            events = [usage_event.decode(e) for e in batch if e is not _STOP]
            try:
                close_old_connections()
                usage_records_ingest(events=events)
            except Exception:
                log.exception("usage writer failed to store %d events", len(events))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

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

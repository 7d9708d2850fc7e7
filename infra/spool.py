"""A local append-only journal for usage events no store would take, replayed once one does.

When neither Redis (the usage stream) nor the database (the direct write) takes a usage event,
the proxy appends it here instead of losing it (gateway/proxy/context.py); so does the embedded
writer with a batch the database kept refusing (billing/writer.py). A background task in each
web process replays the journal.

Files: GATEWAY_SPOOL_DIR holds `usage-<host>-<pid>-<ns>.jsonl`, one record (an encoded usage
event) per line. A process appends only to a file of its own and holds an exclusive flock on it
while it is open, so nobody replays a file that is still being written; the lock goes with the
process, so the files of a process that died are free for any other to replay.

Durability: each record is written with one write(2) before `append` returns, so it survives
the process crashing. The file is fsynced at most once a second (by the append that finds the
last fsync older than that) and when it is sealed: a power cut can lose up to the last second
of spooled records. That bounds the cost when a busy process spools during an outage.

Replay (`Replayer`, every GATEWAY_SPOOL_REPLAY_INTERVAL_S and at start-up): seal the own file,
then for each file that can be locked, hand its records in batches to the sink, and delete the
file once every record was taken. A failure keeps the file for the next round. A record handed
over twice is harmless: ingestion skips request ids it already stored.
"""

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)

_FSYNC_EVERY_S = 1.0
PATTERN = "usage-*.jsonl"

Sink = Callable[[list[bytes]], Awaitable[None]]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._synced_at = 0.0

    def append(self, record: bytes) -> None:
        """Append one record (a line without newlines); raises OSError if the disk refuses."""
        line = record.rstrip(b"\n") + b"\n"
        with self._lock:
            if self._fd is None:
                self._open()
            os.write(self._fd, line)
            now = time.monotonic()
            if now - self._synced_at >= _FSYNC_EVERY_S:
                os.fsync(self._fd)
                self._synced_at = now

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"usage-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The new name must survive a power cut as well as the records written under it.
        _fsync_dir(self.directory)
        self._fd, self._path, self._synced_at = fd, path, time.monotonic()

    def seal(self) -> None:
        """Close the file being written (the next append starts a new one), so it can be
        replayed."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)  # releases the lock
                self._fd = self._path = None

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(PATTERN))

    def pending(self) -> int:
        """Records in files on disk (tests, status)."""
        total = 0
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                total += path.read_bytes().count(b"\n")
        return total

    async def replay(self, sink: Sink, batch_size: int = 500) -> int:
        """Hand every replayable record to `sink`; returns how many were taken.

        Stops at the first failure of the sink (the store is still away): the rest waits for
        the next round.
        """
        self.seal()
        taken = 0
        for path in self.files():
            count = await self._replay_file(path, sink, batch_size)
            if count is None:
                break
            taken += count
        return taken

    async def _replay_file(self, path: Path, sink: Sink, batch_size: int) -> int | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0  # another process replayed it meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # being written, or being replayed by another process
            if os.fstat(fd).st_nlink == 0:
                return 0  # replayed and deleted between our listing and our lock
            with os.fdopen(os.dup(fd), "rb") as file:
                records = [line.rstrip(b"\n") for line in file if line.strip()]
            for start in range(0, len(records), batch_size):
                try:
                    await sink(records[start : start + batch_size])
                except Exception as exc:
                    log.warning("usage spool replay of %s paused: %s", path.name, exc)
                    return None
            os.unlink(path)
            if records:
                log.info("replayed %d spooled usage events from %s", len(records), path.name)
            return len(records)
        finally:
            os.close(fd)


class Replayer:
    """Replays a spool periodically on the running event loop (one task per process)."""

    def __init__(self, spool: Callable[[], Spool], sink: Sink, interval_s: Callable[[], float]):
        self._spool = spool
        self._sink = sink
        self._interval_s = interval_s
        self._task: asyncio.Task | None = None

    def ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="usage-spool-replay")

    async def _run(self) -> None:
        while True:
            try:
                await self._spool().replay(self._sink)
            except Exception:
                log.exception("usage spool replay failed")
            await asyncio.sleep(self._interval_s())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


_spools: dict[str, Spool] = {}
_spools_lock = threading.Lock()


def get_spool(directory: str | Path | None = None) -> Spool:
    """The process's spool for a directory (GATEWAY_SPOOL_DIR unless told otherwise)."""
    if directory is None:
        from django.conf import settings

        directory = settings.GATEWAY_SPOOL_DIR
    key = str(directory)
    with _spools_lock:
        spool = _spools.get(key)
        if spool is None:
            spool = _spools[key] = Spool(key)
        return spool

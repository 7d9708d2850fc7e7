"""Database access from async code on the proxy path.

Two ways in:

- `db_call` runs a function on asgiref's thread-sensitive executor: one thread per process,
  shared with everything else that uses `sync_to_async`. Fine for rare work (the routing table's
  rebuild), wrong for anything a caller can trigger at will.
- `db_call_bounded` runs it on a small pool of threads of its own (GATEWAY_DB_THREADS), with a
  bound on how many calls may wait (GATEWAY_DB_QUEUE) and on how long a caller waits
  (GATEWAY_DB_WAIT_TIMEOUT_S). Key lookups on cache misses and usage written directly go
  through it: a flood of unknown keys, or a database that stopped answering, costs at most that
  many threads and queued calls, and everything beyond gets `DatabaseBusy` at once (a 503)
  instead of queueing behind one thread for minutes.

The /v1 handler (gateway/proxy/handler.py) does not send Django's request_started and
request_finished signals, whose receivers normally close connections that are broken or past
CONN_MAX_AGE. So each call here does that hygiene itself: a Postgres restart costs one failed
lookup (a 503), not a thread stuck with a dead connection. With the psycopg pool (settings
DATABASES OPTIONS pool), "closing" returns the connection to the pool, so an idle thread holds
no connection.
"""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connections

T = TypeVar("T")


class DatabaseBusy(DatabaseError):
    """Too many database calls are running or waiting, or this one waited too long."""


def _close_old_connections() -> None:
    # Django's close_old_connections(), except that a connection inside a transaction is left
    # alone (closing it would break the transaction; tests run inside one).
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


def _with_fresh_connection(fn: Callable[..., T], kwargs: dict) -> T:
    _close_old_connections()
    try:
        return fn(**kwargs)
    finally:
        _close_old_connections()


async def db_call(fn: Callable[..., T], /, **kwargs) -> T:
    """Run a sync ORM function on asgiref's thread-sensitive executor, with connection hygiene."""
    return await sync_to_async(_with_fresh_connection)(fn, kwargs)


class BoundedExecutor:
    """A few threads, a bounded number of calls in flight, and a bounded wait for each.

    A call counts as in flight from submission until its thread is done with it, not until its
    caller stops waiting: a caller that timed out leaves its call running (a thread cannot be
    interrupted), and that call still occupies its slot. So the bound holds for the real work.
    Django's ORM connections are per thread (asgiref's Local keys them by thread here, because
    `run_in_executor` does not carry the caller's context over), so each thread has its own.
    """

    def __init__(self, threads: int, queue: int, timeout_s: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
        self._limit = threads + queue
        self._timeout_s = timeout_s
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._in_flight -= 1

    async def call(self, fn: Callable[..., T], /, timeout_s: float | None = None, **kwargs) -> T:
        with self._lock:
            if self._in_flight >= self._limit:
                raise DatabaseBusy(f"{self._in_flight} database calls in flight")
            self._in_flight += 1
        try:
            future = self._executor.submit(_with_fresh_connection, fn, kwargs)
        except BaseException:
            with self._lock:
                self._in_flight -= 1
            raise
        future.add_done_callback(self._release)
        timeout = self._timeout_s if timeout_s is None else timeout_s
        try:
            # On timeout wait_for cancels the wrapper, which cancels a call still queued (it
            # never runs); a running call finishes in its thread and is then released.
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError as exc:
            raise DatabaseBusy(f"no database answer within {timeout:g} s") from exc

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_bounded: BoundedExecutor | None = None
_bounded_lock = threading.Lock()


def bounded_executor() -> BoundedExecutor:
    global _bounded
    if _bounded is None:
        with _bounded_lock:
            if _bounded is None:
                _bounded = BoundedExecutor(
                    settings.GATEWAY_DB_THREADS,
                    settings.GATEWAY_DB_QUEUE,
                    settings.GATEWAY_DB_WAIT_TIMEOUT_S,
                )
    return _bounded


async def db_call_bounded(fn: Callable[..., T], /, timeout_s: float | None = None, **kwargs) -> T:
    """Run a sync ORM function on the bounded pool; raises DatabaseBusy when it is full.

    Everything a caller can trigger at will (key lookups on cache misses, usage rows written
    directly) comes through here. Errors from `fn` propagate unchanged (DatabaseError when the
    database is down: psycopg_pool's timeout turns into OperationalError).
    """
    return await bounded_executor().call(fn, timeout_s=timeout_s, **kwargs)

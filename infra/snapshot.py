"""A per-process snapshot of database state, refreshed ahead of its expiry.

The hot path reads snapshots (the routing table, the policy table), never the database. Each
snapshot is an immutable object with a `built_at` (time.monotonic() at the start of its build);
this cache decides when to build the next one:

- younger than TTL/2: served;
- between TTL/2 and the TTL: served while one background task rebuilds it;
- older than the TTL: the request waits for that rebuild (at most GATEWAY_DB_WAIT_TIMEOUT_S),
  so nothing older is served while the database answers.

A failed build keeps the previous snapshot and is retried after a backoff (doubling per failure
in a row); meanwhile requests are served, not held. With no snapshot at all, a failed build
makes every request fail at once with `unavailable` until the backoff has passed, instead of
each one trying the database again.

A refresh that finds nothing changed builds nothing. A cache given a `fingerprint` (usually a
`TablesFingerprint` of the tables its build reads) asks the database for it first, in the same
thread: one small query instead of the build's several ORM queries and its Python work, which
hold the GIL and so delay the event loop while they run (measured: 1-4 ms of CPU per build,
and every process rebuilds each snapshot every TTL/2). An unchanged fingerprint keeps the
snapshot in service and counts as fresh from the check; a full build still runs at least every
FULL_REBUILD_S, for anything a fingerprint cannot see.

Each build is timed in the thread that runs it and reported to the observer the app registers
at start-up (`set_build_observer`: gateway/proxy/metrics.py's histogram), under the first word of
the cache's name (routing, policy, compliance). Builds run on the bounded database pool (a
thread), never on the event loop, except the readiness probe's first build (`ensure_built`).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

from django.conf import settings
from django.db import DatabaseError, connection

from .db import db_call_bounded
from .perloop import PerLoop

# After a failed rebuild: wait this long, doubling per failure in a row, up to the maximum.
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 10.0
# A build reads whole tables: longer than a key lookup may take, but never without end (a
# database that stops answering would hold it forever).
DEFAULT_BUILD_TIMEOUT_S = 10.0
# An unchanged fingerprint skips the build, but never for longer than this.
FULL_REBUILD_S = 60.0
# Told (label, seconds) after each successful build; from the building thread.
_build_observer: Callable[[str, float], None] | None = None


def set_build_observer(observer: Callable[[str, float], None] | None) -> None:
    global _build_observer
    _build_observer = observer


class Snapshot(Protocol):
    built_at: float


S = TypeVar("S", bound=Snapshot)


class SnapshotUnavailable(DatabaseError):
    """There is no snapshot yet and building one failed moments ago (retried after a backoff).
    A DatabaseError: the database is what a build depends on, and callers answer 503."""


class TablesFingerprint:
    """What a build reads, summarized by the database in one query: per table, the row count
    and the sum of a hash of every row's text, so any insert, update or delete changes it.
    `extra` adds what else the build depends on (a date, a setting). PostgreSQL only: elsewhere
    it is None, and a refresh always builds."""

    def __init__(self, *models, extra: Callable[[], Hashable] | None = None) -> None:
        self.models = models
        self.extra = extra
        self._sql = None

    @property
    def tables(self) -> set[str]:
        return {model._meta.db_table for model in self.models}

    def _query(self):
        # Composed by psycopg with quoted identifiers (the models' own table names): no string
        # formatting, and no value from a request or from configuration.
        from psycopg import sql

        per_table = sql.SQL(
            "(SELECT row(count(*), sum(hashtextextended(t::text, 0)))::text FROM {} t)"
        )
        return sql.SQL("SELECT ") + sql.SQL(", ").join(
            per_table.format(sql.Identifier(table)) for table in sorted(self.tables)
        )

    def __call__(self) -> Hashable | None:
        if connection.vendor != "postgresql":
            return None
        self._sql = self._sql or self._query()
        with connection.cursor() as cursor:
            cursor.execute(self._sql)
            row = cursor.fetchone()
        return (tuple(row), self.extra() if self.extra is not None else None)


class SnapshotCache(Generic[S]):
    """One process's copy of a snapshot built by `build` (synchronous, run on the bounded
    database pool). `ttl` is read at each use, so settings overrides apply at once."""

    def __init__(
        self,
        name: str,
        build: Callable[[], S],
        ttl: Callable[[], float],
        *,
        unavailable: type[Exception] = SnapshotUnavailable,
        logger: logging.Logger | None = None,
        build_timeout_s: float = DEFAULT_BUILD_TIMEOUT_S,
        fingerprint: Callable[[], Hashable | None] | None = None,
    ) -> None:
        self.name = name
        self.label = name.split(" ", 1)[0]
        self._build_untimed = build
        self._ttl = ttl
        self._unavailable = unavailable
        self._log = logger or logging.getLogger(__name__)
        self._build_timeout_s = build_timeout_s
        self._table: S | None = None
        self._locks: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)
        self._refresh: asyncio.Task | None = None
        self._failures = 0  # failed builds in a row
        self._retry_at = 0.0
        self._last_error = ""
        self.fingerprint = fingerprint
        # The snapshot in service's fingerprint, and when a check last found it unchanged:
        # each with the snapshot it is of (a test may put another one in service).
        self._fingerprint: tuple[S | None, Hashable | None] = (None, None)
        self._confirmed: tuple[S | None, float] = (None, 0.0)

    @property
    def current(self) -> S | None:
        """The snapshot in service, whatever its age (None before the first build)."""
        return self._table

    async def get(self) -> S:
        table = self._table
        if table is not None:
            age = time.monotonic() - self._fresh_since(table)
            ttl = self._ttl()
            if age < ttl / 2:
                return table
            refresh = self._start_refresh()
            if age < ttl or refresh is None:
                return table
            # A failure keeps the snapshot it had. A database that accepts but does not answer
            # must not hold requests: past the wait, serve the snapshot there is; the rebuild
            # goes on (and times out) in the background.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(refresh), settings.GATEWAY_DB_WAIT_TIMEOUT_S)
            return self._table or table
        async with self._locks.get():  # one build at a time, not one per waiting request
            if self._table is None:
                if time.monotonic() < self._retry_at:
                    raise self._unavailable(
                        f"building the {self.name} failed ({self._last_error}); retrying soon"
                    )
                try:
                    self._apply(await self._build())
                except Exception as exc:
                    self._failed(exc)
                    raise
            return self._table

    def _fresh_since(self, table: S) -> float:
        confirmed, at = self._confirmed
        return at if confirmed is table else table.built_at

    def _build_sync(self) -> S:
        started = time.perf_counter()
        table = self._build_untimed()
        observer = _build_observer
        if observer is not None:
            observer(self.label, time.perf_counter() - started)
        return table

    def _refresh_sync(self, current: S | None) -> tuple[S | None, Hashable | None, float]:
        """(the new snapshot or None if `current` is unchanged, its fingerprint, when checked).
        The fingerprint is read before the build: a change in between is seen by the build and
        by the next check, so nothing is missed."""
        checked_at = time.monotonic()
        found = self.fingerprint() if self.fingerprint is not None else None
        of, known = self._fingerprint
        if (
            found is not None
            and current is not None
            and of is current
            and found == known
            and checked_at - current.built_at < FULL_REBUILD_S
        ):
            return None, found, checked_at
        return self._build_sync(), found, checked_at

    async def _build(self) -> tuple[S | None, Hashable | None, float]:
        return await db_call_bounded(
            self._refresh_sync, timeout_s=self._build_timeout_s, current=self._table
        )

    def _apply(self, result: tuple[S | None, Hashable | None, float]) -> None:
        table, found, checked_at = result
        if table is None:  # unchanged: the snapshot in service is fresh as of the check
            self._confirmed = (self._table, checked_at)
            self._failures, self._retry_at, self._last_error = 0, 0.0, ""
            return
        self._install(table)
        self._fingerprint = (table, found)

    def _start_refresh(self) -> asyncio.Task | None:
        """The rebuild in progress on this loop, or a new one; None while backing off."""
        task = self._refresh
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return task
        if time.monotonic() < self._retry_at:
            return None
        self._refresh = asyncio.create_task(self._rebuild())
        return self._refresh

    async def _rebuild(self) -> None:
        try:
            result = await self._build()
        except Exception as exc:
            self._failed(exc)
        else:
            self._apply(result)

    def installed(self, old: S | None, new: S) -> None:
        """Called as a new snapshot goes into service; subclasses report what changed."""

    def _install(self, table: S) -> None:
        self.installed(self._table, table)
        if self._failures:
            self._log.info("%s rebuilt after %d failed attempt(s)", self.name, self._failures)
        self._table = table
        self._failures, self._retry_at, self._last_error = 0, 0.0, ""

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        backoff = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** (self._failures - 1))
        self._retry_at = time.monotonic() + backoff
        self._last_error = type(exc).__name__
        served = (
            f"serving the {self.name} built {time.monotonic() - self._table.built_at:.1f} s ago"
            if self._table is not None
            else f"no {self.name} to serve"
        )
        self._log.warning(
            "%s build failed (%d in a row): %s; %s; next try in %.1f s",
            self.name,
            self._failures,
            exc,
            served,
            backoff,
        )

    def ensure_built(self) -> None:
        """Build the first snapshot from synchronous code (the readiness probe), so the first
        request finds one. Does nothing if there is one, or while backing off."""
        if self._table is not None or time.monotonic() < self._retry_at:
            return
        try:
            self._apply(self._refresh_sync(None))
        except Exception as exc:
            self._failed(exc)

    def status(self) -> dict:
        """What /readyz reports: the snapshot's age and failed rebuilds."""
        table = self._table
        return {
            "age_s": None
            if table is None
            else round(time.monotonic() - self._fresh_since(table), 3),
            "failed_builds": self._failures,
            "last_error": self._last_error or None,
        }

    def invalidate(self) -> None:
        """Forget the snapshot: the next get() builds a fresh one (after a change made here)."""
        self._table = None
        self._refresh = None
        self._fingerprint, self._confirmed = (None, None), (None, 0.0)
        self._failures, self._retry_at, self._last_error = 0, 0.0, ""

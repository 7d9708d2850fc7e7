"""The shared key cache: snapshots of keys in the state store, and how changes reach them.

Per key hash the store holds two entries:

- the snapshot, `gw:key:<hash>`: the key's principal as JSON (or `null` for an unknown key),
  written by the proxy after a database lookup, with a TTL (GATEWAY_SHARED_KEY_CACHE_TTL_S,
  GATEWAY_NEGATIVE_KEY_CACHE_TTL_S for unknown keys);
- the generation, `gw:keygen:<hash>`: a counter bumped by every invalidation.

An invalidation (after the commit of any change to a key, its team or its organization) bumps
the generation and deletes the snapshot in one atomic step (INVALIDATE). A lookup reads the
generation together with the snapshot (one MGET), and writes what it loaded from the database
only if the generation is still the one it read (FILL, a compare-and-set). So a lookup that
read the row before a revocation and reaches Redis after it cannot put the old row back: the
revocation's bump makes its write a no-op.

An invalidation that fails (Redis unreachable) is kept and retried every
GATEWAY_KEY_INVALIDATION_RETRY_S by a background thread, so it outlives the outage instead of
leaving the old snapshot in place for its whole TTL. Changes that bypass the ORM entirely (raw
SQL) are bounded by the snapshot's TTL alone. docs/security.md and docs/operations.md list
the bounds.
"""

import atexit
import logging
import threading
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from infra.state import StateUnavailable, get_state
from infra.state.base import Script

log = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "gw:key:"
GENERATION_PREFIX = "gw:keygen:"
# A generation must outlive any lookup that read it (bounded by GATEWAY_DB_WAIT_TIMEOUT_S);
# an hour is far beyond that, and lets counters of deleted keys disappear eventually.
GENERATION_TTL_S = 3600


def snapshot_name(key_hash: str) -> str:
    return SNAPSHOT_PREFIX + key_hash


def generation_name(key_hash: str) -> str:
    return GENERATION_PREFIX + key_hash


def _fill_py(view, keys, args):
    if int(view.get(keys[1]) or 0) != int(args[0]):
        return 0
    view.set(keys[0], args[1], int(args[2]))
    return 1


# KEYS: snapshot, generation. ARGV: the generation the reader saw, the snapshot, its TTL.
FILL = Script(
    name="key-cache-fill",
    lua="""
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
""",
    py=_fill_py,
)


def _invalidate_py(view, keys, args):
    for i in range(0, len(keys), 2):
        view.incrby(keys[i], 1)
        view.expire(keys[i], int(args[0]))
        view.delete(keys[i + 1])
    return len(keys) // 2


# KEYS: generation, snapshot, generation, snapshot, ... ARGV: the generations' TTL.
INVALIDATE = Script(
    name="key-cache-invalidate",
    lua="""
for i = 1, #KEYS, 2 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
  redis.call('DEL', KEYS[i + 1])
end
return #KEYS / 2
""",
    py=_invalidate_py,
)


class _PendingInvalidations:
    """Invalidations Redis did not take, retried until it does.

    Process memory, so a process that dies with some pending leaves those snapshots to their
    TTL; a long-running process (web, worker) retries them within a second of Redis returning.
    """

    def __init__(self) -> None:
        self._hashes: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, key_hashes: Iterable[str]) -> None:
        with self._lock:
            self._hashes.update(key_hashes)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="key-invalidation-retry", daemon=True
                )
                self._thread.start()

    def flush(self) -> bool:
        """Try the pending invalidations once; True when none is left."""
        with self._lock:
            batch = list(self._hashes)
        if not batch:
            return True
        try:
            _send(batch)
        except StateUnavailable:
            return False
        with self._lock:
            self._hashes.difference_update(batch)
            return not self._hashes

    def _run(self) -> None:
        while True:
            with self._lock:
                self._wake.wait(settings.GATEWAY_KEY_INVALIDATION_RETRY_S)
            if self.flush():
                with self._lock:
                    if not self._hashes:
                        self._thread = None
                        return

    def clear(self) -> None:
        with self._lock:
            self._hashes.clear()


pending = _PendingInvalidations()


def _send(key_hashes: list[str]) -> None:
    names: list[str] = []
    for key_hash in key_hashes:
        names += [generation_name(key_hash), snapshot_name(key_hash)]
    get_state().run_script_sync(INVALIDATE, names, [GENERATION_TTL_S])


def invalidate_now(key_hashes: Iterable[str]) -> None:
    """Invalidate at once; what Redis does not take now is retried in the background."""
    batch = list(dict.fromkeys(key_hashes))
    if not batch:
        return
    try:
        _send(batch)
    except StateUnavailable as exc:
        log.warning(
            "key cache invalidation of %d key(s) failed (%s); retrying every %.1f s",
            len(batch),
            exc,
            settings.GATEWAY_KEY_INVALIDATION_RETRY_S,
        )
        pending.add(batch)


def invalidate_on_commit(key_hashes: Iterable[str], *, using: str | None = None) -> None:
    """Invalidate once the change is committed: before that, a lookup could still load the old
    row and cache it again (FILL refuses only writes that started before the bump)."""
    batch = list(key_hashes)
    if batch:
        transaction.on_commit(lambda: invalidate_now(batch), using=using)


@atexit.register
def _last_try() -> None:
    # A short-lived process (a management command) gets one more chance before it exits.
    if len(pending) and not pending.flush():
        log.error(
            "%d key cache invalidation(s) could not reach Redis; the keys' cached snapshots "
            "expire within GATEWAY_SHARED_KEY_CACHE_TTL_S (%d s)",
            len(pending),
            settings.GATEWAY_SHARED_KEY_CACHE_TTL_S,
        )

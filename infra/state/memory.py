"""In-process state for the embedded default: one process, nothing shared, nothing durable.

gateway/checks.py refuses WEB_CONCURRENCY > 1 in this mode, because a second process would see
different keys, limits and revocations.
"""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .base import Script, StateStore, StateUnavailable

# Set at start-up by the app that stores usage (billing registers its embedded writer), so this
# package never imports an app.
_usage_sink: Callable[[bytes], None] | None = None


def set_usage_sink(sink: Callable[[bytes], None] | None) -> None:
    global _usage_sink
    _usage_sink = sink


# Expired entries are dropped when read, and the rest in a sweep at most this often (on a write):
# a key nobody reads again (a past budget bucket, an end user's rate-limit window)
# must not stay in memory for the life of the process.
_SWEEP_EVERY_S = 60.0


class _View:
    """The dict operations scripts use; callers hold the store's lock."""

    def __init__(self, data: dict[str, tuple[float | None, bytes]]) -> None:
        self._data = data
        self._next_sweep = time.monotonic() + _SWEEP_EVERY_S

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + _SWEEP_EVERY_S
        expired = [
            k for k, (expires, _) in self._data.items() if expires is not None and expires < now
        ]
        for key in expired:
            del self._data[key]

    def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires is not None and expires < time.monotonic():
            del self._data[key]
            return None
        return value

    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        self._data[key] = (None if ttl_s is None else now + ttl_s, value)

    def incrby(self, key: str, amount: int) -> int:
        if time.monotonic() >= self._next_sweep:
            self._sweep(time.monotonic())
        current = self.get(key)
        total = (int(current) if current is not None else 0) + amount
        expires = self._data[key][0] if current is not None else None
        self._data[key] = (expires, str(total).encode())
        return total

    def expire(self, key: str, ttl_s: float) -> None:
        value = self.get(key)
        if value is not None:
            self._data[key] = (time.monotonic() + ttl_s, value)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def time_us(self) -> int:
        return time.time_ns() // 1000


class MemoryStateStore(StateStore):
    def __init__(self) -> None:
        self._data: dict[str, tuple[float | None, bytes]] = {}
        self._view = _View(self._data)
        # Sync callers (admin, commands) run on other threads than the event loop.
        self._lock = threading.Lock()

    async def aget(self, key: str) -> bytes | None:
        with self._lock:
            return self._view.get(key)

    async def amget(self, *keys: str) -> list[bytes | None]:
        with self._lock:
            return [self._view.get(key) for key in keys]

    async def aset(self, key: str, value: bytes, ttl_s: int) -> None:
        with self._lock:
            self._view.set(key, value, ttl_s)

    async def adelete(self, *keys: str) -> None:
        self.delete(*keys)

    async def aincrby(self, key: str, amount: int, ttl_s: int) -> int:
        with self._lock:
            created = self._view.get(key) is None
            total = self._view.incrby(key, amount)
            if created:
                self._view.expire(key, ttl_s)
            return total

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return self.run_script_sync(script, keys, args)

    def run_script_sync(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        with self._lock:
            return script.py(self._view, keys, args)

    async def run_script_and_append(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], event: bytes
    ) -> Any:
        result = self.run_script_sync(script, keys, args)
        await self.append_usage(event)
        return result

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._view.delete(key)

    async def append_usage(self, event: bytes) -> None:
        if _usage_sink is None:
            raise StateUnavailable("no usage sink registered")
        _usage_sink(event)

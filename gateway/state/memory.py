"""In-process state for the embedded default: one process, nothing shared, nothing durable.

gateway/checks.py refuses WEB_CONCURRENCY > 1 in this mode, because a second process would see
different keys, limits and revocations.
"""

import time

from .base import StateStore


class MemoryStateStore(StateStore):
    def __init__(self) -> None:
        self._data: dict[str, tuple[float, bytes]] = {}

    async def aget(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    async def aset(self, key: str, value: bytes, ttl_s: int) -> None:
        self._data[key] = (time.monotonic() + ttl_s, value)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def append_usage(self, event: bytes) -> None:
        from billing.writer import get_writer

        get_writer().submit(event)

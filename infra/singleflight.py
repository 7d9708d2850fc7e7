"""Single flight: concurrent callers asking for the same thing share one call.

A burst of requests that all miss the same cache entry at once (a new key's first requests, a
budget counter a Redis restart lost) would otherwise send one database query each to the
bounded pool (infra/db.py), which refuses what it cannot queue: the burst would turn into 503s.
With this, the first caller's call is shared by everyone who asks while it runs.

Per event loop: a task belongs to the loop that created it, and each uvicorn worker or test
server thread runs its own.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Task[T]] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        task = self._calls.get(key)
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._calls[key] = asyncio.ensure_future(call())
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one caller going away (a client disconnect) must not cancel the others' call.
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, done: asyncio.Task) -> None:
        if self._calls.get(key) is done:
            del self._calls[key]

    def __len__(self) -> int:
        return len(self._calls)

"""One object per running event loop.

Async clients (httpx, redis.asyncio) hold connections bound to the loop that opened them. A
server process has one loop, but tests and management commands may run several; keying the
instance by loop keeps each pool where it belongs instead of failing with "attached to a
different loop".
"""

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        instance = self._instances.get(loop)
        if instance is None:
            instance = self._instances[loop] = self._factory()
        return instance

    def pop(self) -> T | None:
        """Forget (and return) the running loop's instance, e.g. to close it at shutdown."""
        return self._instances.pop(asyncio.get_running_loop(), None)

    def clear(self) -> None:
        self._instances.clear()

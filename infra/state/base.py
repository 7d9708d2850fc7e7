from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class StateUnavailable(Exception):
    """The state store cannot be reached. The proxy answers 503, never 401 or 429."""


class ScriptView(Protocol):
    """What a script's Python twin may do to the in-process store (all under one lock)."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...
    def incrby(self, key: str, amount: int) -> int: ...
    def expire(self, key: str, ttl_s: float) -> None: ...
    def delete(self, key: str) -> None: ...
    def time_us(self) -> int:
        """The store's clock in microseconds (Lua: `redis.call('TIME')`), so every process that
        shares a store also shares one clock."""
        ...


@dataclass(frozen=True)
class Script:
    """An atomic operation over several keys, written twice on purpose.

    Redis runs `lua` (EVALSHA, one round trip, atomic on the server). The in-process store runs
    `py` under its lock: the embedded default has no Redis, and a second interpreter (Lua in
    Python) would cost more than the few lines of each twin. Tests run both against the same
    cases (tests/test_state_store.py), so the twins cannot drift.

    Both receive arguments as the caller passed them; Redis hands them to Lua as strings, so a
    twin converts what it compares (`tonumber` in Lua, `int()` in Python). Return values must
    be what Redis would return: integers, bytes, None (for Lua's false/nil) or lists of them.
    """

    name: str
    lua: str
    py: Callable[[ScriptView, Sequence[str], Sequence[Any]], Any]


class StateStore(ABC):
    """Key/value with TTL, counters, atomic scripts, plus an append-only usage event log."""

    @abstractmethod
    async def aget(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def amget(self, *keys: str) -> list[bytes | None]:
        """Several values in one round trip, in the order asked (None for a missing key)."""

    @abstractmethod
    async def aset(self, key: str, value: bytes, ttl_s: int) -> None: ...

    @abstractmethod
    async def adelete(self, *keys: str) -> None: ...

    @abstractmethod
    async def aincrby(self, key: str, amount: int, ttl_s: int) -> int:
        """Add to a counter; the TTL is set when the counter is created."""

    @abstractmethod
    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run `script` atomically: no other operation on the store interleaves with it."""

    async def run_script_and_append(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], event: bytes
    ) -> Any:
        """Run `script`, then append the usage `event`, in one round trip where the store can.

        Raises StateUnavailable if either fails; the event may have been appended even so (a
        script error after the append), which is safe: ingestion is idempotent per request id.
        """
        result = await self.run_script(script, keys, args)
        await self.append_usage(event)
        return result

    @abstractmethod
    def run_script_sync(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """`run_script` for synchronous callers (services, admin actions, commands)."""

    @abstractmethod
    def delete(self, *keys: str) -> None:
        """Synchronous: called by services (admin actions, commands) to invalidate."""

    @abstractmethod
    async def append_usage(self, event: bytes) -> None:
        """Hand one usage event to durable ingestion (stream or in-process writer)."""

    def ping(self) -> bool:
        return True

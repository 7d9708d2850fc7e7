from abc import ABC, abstractmethod


class StateUnavailable(Exception):
    """The state store cannot be reached. The proxy answers 503, never 401 or 429."""


class StateStore(ABC):
    """Key/value with TTL plus an append-only usage event log."""

    @abstractmethod
    async def aget(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def aset(self, key: str, value: bytes, ttl_s: int) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Synchronous: called by services (admin actions, commands) to invalidate."""

    @abstractmethod
    async def append_usage(self, event: bytes) -> None:
        """Hand one usage event to durable ingestion (stream or in-process writer)."""

    def ping(self) -> bool:
        return True

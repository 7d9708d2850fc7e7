"""Redis state: shared by every web process and worker."""

import redis
import redis.asyncio as aioredis
from django.conf import settings

from gateway.perloop import PerLoop

from .base import StateStore, StateUnavailable

# Short timeouts: a hung Redis must turn into a quick 503, not a pile of waiting requests.
_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


class RedisStateStore(StateStore):
    def __init__(self, url: str) -> None:
        self._url = url
        self._async = PerLoop(lambda: aioredis.Redis.from_url(url, **_TIMEOUTS))
        self._sync = redis.Redis.from_url(url, **_TIMEOUTS)

    async def aget(self, key: str) -> bytes | None:
        try:
            return await self._async.get().get(key)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def aset(self, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await self._async.get().set(key, value, ex=ttl_s)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    def delete(self, key: str) -> None:
        self._sync.delete(key)

    async def append_usage(self, event: bytes) -> None:
        try:
            await self._async.get().xadd(settings.GATEWAY_USAGE_STREAM, {"e": event})
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    def ping(self) -> bool:
        try:
            return bool(self._sync.ping())
        except redis.RedisError:
            return False

    @property
    def sync_client(self) -> redis.Redis:
        return self._sync

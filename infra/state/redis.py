"""Redis state: shared by every web process and worker."""

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from infra.perloop import PerLoop

from .base import Script, StateStore, StateUnavailable

# Short timeouts: a hung Redis must turn into a quick 503, not a pile of waiting requests.
_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


def _client_options(retry_class: type) -> dict:
    """Connection handling shared by the sync and async clients.

    After a Redis restart every pooled connection is dead, and each would fail one request.
    One immediate retry on a fresh connection hides that. Only connection errors are retried:
    a timeout means a hung or overloaded server, where a retry doubles the wait (and the first
    attempt may have run). redis-py's default (10 retries with backoff on errors and timeouts)
    would hold a request for many seconds while Redis is down, instead of a quick 503.
    A connection idle for 30 s is pinged before use, so one a firewall or failover dropped
    silently is replaced instead of timing out a request.
    """
    return {
        **_TIMEOUTS,
        "retry": retry_class(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        "health_check_interval": 30,
    }


# Increment, and set the TTL only when the counter is new: one round trip, atomic.
_INCR_LUA = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return v
"""


# run_script_and_append: the script's Lua, preceded by the append of the usage event.
_APPENDING = ":appending"
_APPEND_LUA = "redis.call('XADD', KEYS[#KEYS], '*', 'e', ARGV[#ARGV])\n"


def _async_client(url: str) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing at once.

    redis-py's default asyncio pool raises "Too many connections" the moment more than its
    limit (100) of commands are in flight, and that error is a ConnectionError: a burst of a
    few hundred concurrent requests (a thousand streams opening, or 64 connections under a
    stall) got 503 dependency_unavailable from a healthy Redis. A blocking pool of the same size
    makes the excess wait, at most the socket timeout, for a connection another request is
    about to return; each command holds one for well under a millisecond.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.GATEWAY_REDIS_MAX_CONNECTIONS,
        timeout=_TIMEOUTS["socket_timeout"],
        **_client_options(AsyncRetry),
    )
    return aioredis.Redis(connection_pool=pool)


class RedisStateStore(StateStore):
    def __init__(self, url: str) -> None:
        self._url = url
        self._async = PerLoop(lambda: _async_client(url))
        self._sync = redis.Redis.from_url(url, **_client_options(Retry))
        self._shas: dict[str, str] = {}

    async def aget(self, key: str) -> bytes | None:
        try:
            return await self._async.get().get(key)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def amget(self, *keys: str) -> list[bytes | None]:
        try:
            return await self._async.get().mget(keys)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def aset(self, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await self._async.get().set(key, value, ex=ttl_s)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def adelete(self, *keys: str) -> None:
        try:
            await self._async.get().delete(*keys)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def aincrby(self, key: str, amount: int, ttl_s: int) -> int:
        try:
            return int(await self._async.get().eval(_INCR_LUA, 1, key, amount, ttl_s))
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self._async.get()
        try:
            sha = self._shas.get(script.name)
            if sha is not None:
                try:
                    return await client.evalsha(sha, len(keys), *keys, *args)
                except redis.exceptions.NoScriptError:
                    pass  # Redis restarted and forgot it: load it again below
            sha = self._shas[script.name] = await client.script_load(script.lua)
            return await client.evalsha(sha, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    async def run_script_and_append(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], event: bytes
    ) -> Any:
        """One EVALSHA of the script with the XADD of the event in front of it: one round trip
        and one command (a pipeline of two costs the client a third more CPU). The event goes
        first, so it is appended whatever the script then does, which is what settlement
        wants; Redis runs the two atomically. The script sees the stream as its last key and
        the event as its last argument, after its own: it must not read #KEYS or #ARGV."""
        client = self._async.get()
        name = script.name + _APPENDING
        keys = (*keys, settings.GATEWAY_USAGE_STREAM)
        args = (*args, event)
        try:
            sha = self._shas.get(name)
            if sha is not None:
                try:
                    return await client.evalsha(sha, len(keys), *keys, *args)
                except redis.exceptions.NoScriptError:
                    pass  # Redis restarted and forgot it; nothing ran: load it and run it again
            sha = self._shas[name] = await client.script_load(_APPEND_LUA + script.lua)
            return await client.evalsha(sha, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    def run_script_sync(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self._sync
        try:
            sha = self._shas.get(script.name)
            if sha is not None:
                try:
                    return client.evalsha(sha, len(keys), *keys, *args)
                except redis.exceptions.NoScriptError:
                    pass
            sha = self._shas[script.name] = client.script_load(script.lua)
            return client.evalsha(sha, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

    def delete(self, *keys: str) -> None:
        try:
            self._sync.delete(*keys)
        except redis.RedisError as exc:
            raise StateUnavailable(str(exc)) from exc

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

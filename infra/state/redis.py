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


class RedisStateStore(StateStore):
    def __init__(self, url: str) -> None:
        self._url = url
        self._async = PerLoop(lambda: aioredis.Redis.from_url(url, **_client_options(AsyncRetry)))
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
        """EVALSHA and XADD in one pipeline: one round trip (not a transaction: the event is
        appended whatever the script does, which is what settlement wants)."""
        client = self._async.get()
        try:
            sha = self._shas.get(script.name)
            if sha is None:
                sha = self._shas[script.name] = await client.script_load(script.lua)
            async with client.pipeline(transaction=False) as pipe:
                pipe.evalsha(sha, len(keys), *keys, *args)
                pipe.xadd(settings.GATEWAY_USAGE_STREAM, {"e": event})
                result, appended = await pipe.execute(raise_on_error=False)
            if isinstance(appended, Exception):
                raise appended
            if isinstance(result, redis.exceptions.NoScriptError):
                # Redis restarted and forgot the script; the event is in: run the script alone.
                sha = self._shas[script.name] = await client.script_load(script.lua)
                return await client.evalsha(sha, len(keys), *keys, *args)
            if isinstance(result, Exception):
                raise result
            return result
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

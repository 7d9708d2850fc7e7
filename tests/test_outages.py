"""The Redis clients against a Redis that restarts or goes away: a throwaway redis-server of the
test's own, never the shared one."""

import asyncio
import concurrent.futures

import pytest

from infra.state import StateUnavailable
from infra.state.redis import RedisStateStore


@pytest.fixture
def loop():
    # One loop for the whole test: the async client's pooled connections belong to it.
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _round_trips(store: RedisStateStore, n: int) -> list[bytes | None]:
    # Concurrent, so the pool holds several connections, and all of them die in a restart.
    await asyncio.gather(*(store.aset(f"k{i}", b"v", 60) for i in range(n)))
    return await asyncio.gather(*(store.aget(f"k{i}") for i in range(n)))


def test_no_request_fails_on_the_dead_connections_a_redis_restart_leaves(redis_server, loop):
    store = RedisStateStore(redis_server.url)
    assert loop.run_until_complete(_round_trips(store, 5)) == [b"v"] * 5
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda i: store.delete(f"s{i}"), range(5)))

    redis_server.stop()
    redis_server.start()  # same port, empty, every pooled connection dead

    # Each operation meets a dead connection first and retries once on a fresh one.
    assert loop.run_until_complete(_round_trips(store, 5)) == [b"v"] * 5
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda i: store.delete(f"s{i}"), range(5)))
    assert store.ping()


def test_a_redis_that_is_gone_fails_fast_instead_of_retrying_for_seconds(redis_server, loop):
    store = RedisStateStore(redis_server.url)
    assert loop.run_until_complete(_round_trips(store, 2)) == [b"v"] * 2
    redis_server.stop()

    # A deadline for the wait, far below what redis-py's default (ten retries with backoff)
    # would take: the caller gets its StateUnavailable (a 503) quickly.
    with pytest.raises(StateUnavailable):
        loop.run_until_complete(asyncio.wait_for(store.aget("k0"), timeout=2))
    with concurrent.futures.ThreadPoolExecutor(1) as pool, pytest.raises(StateUnavailable):
        pool.submit(store.delete, "k0").result(timeout=2)

"""The state store's two implementations, held to the same cases so they cannot drift.

Every test runs twice: against Redis (the test database number) and against the in-process
store of the embedded default. Scripts are the interesting part: the Lua and the Python twin of
each script the gateway uses run through the same assertions.
"""

import asyncio
import time

import pytest
from django.conf import settings

from infra.state import StateUnavailable
from infra.state.base import Script
from infra.state.memory import MemoryStateStore, set_usage_sink
from infra.state.redis import RedisStateStore
from tenants import keycache

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


@pytest.fixture(params=["redis", "memory"])
def store(request):
    if request.param == "memory":
        return MemoryStateStore()
    store = RedisStateStore(settings.REDIS_URL)
    store.sync_client.flushdb()
    return store


def _eventually(condition, what: str, timeout_s: float = 5.0):
    """Poll a condition; a deadline that bounds the wait, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _run(coro):
    return asyncio.run(coro)


# --- Plain values -------------------------------------------------------------------------------


async def test_get_returns_what_set_stored_and_none_for_a_missing_key(store):
    assert await store.aget("k") is None
    await store.aset("k", b"value", 60)
    assert await store.aget("k") == b"value"
    await store.aset("k", b"other", 60)
    assert await store.aget("k") == b"other"


def test_value_disappears_after_its_ttl(store):
    _run(store.aset("short", b"v", 1))
    _run(store.aset("long", b"v", 60))
    _eventually(lambda: _run(store.aget("short")) is None, "the 1 s value to expire")
    assert _run(store.aget("long")) == b"v"


async def test_mget_answers_in_the_order_asked_with_none_for_missing_keys(store):
    await store.aset("a", b"1", 60)
    await store.aset("c", b"3", 60)
    assert await store.amget("c", "b", "a") == [b"3", None, b"1"]
    assert await store.amget("nothing") == [None]


async def test_adelete_removes_every_named_key_and_ignores_missing_ones(store):
    for name in ("a", "b", "c"):
        await store.aset(name, b"v", 60)
    await store.adelete("a", "b", "missing")
    assert await store.amget("a", "b", "c") == [None, None, b"v"]


async def test_sync_delete_removes_keys(store):
    await store.aset("a", b"v", 60)
    store.delete("a", "missing")
    assert await store.aget("a") is None


# --- Counters -----------------------------------------------------------------------------------


async def test_incrby_counts_from_zero_and_returns_the_new_total(store):
    assert await store.aincrby("n", 1, 60) == 1
    assert await store.aincrby("n", 5, 60) == 6
    assert await store.aget("n") == b"6"


def test_incrby_sets_the_ttl_when_the_counter_is_created_and_never_extends_it(store):
    assert _run(store.aincrby("n", 1, 1)) == 1
    # A later increment with a long TTL must not keep a window counter alive.
    assert _run(store.aincrby("n", 1, 600)) == 2
    _eventually(lambda: _run(store.aget("n")) is None, "the counter's first TTL to expire")
    assert _run(store.aincrby("n", 1, 60)) == 1


# --- Scripts ------------------------------------------------------------------------------------

_COUNT_AND_ECHO = Script(
    name="test-count-and-echo",
    lua="""
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n > tonumber(ARGV[2]) then return false end
return {n, redis.call('GET', KEYS[2])}
""",
    py=lambda view, keys, args: (
        None if (n := view.incrby(keys[0], int(args[0]))) > int(args[1]) else [n, view.get(keys[1])]
    ),
)


async def test_script_returns_integers_bytes_lists_and_none_alike(store):
    await store.aset("echo", b"hello", 60)
    assert await store.run_script(_COUNT_AND_ECHO, ["n", "echo"], [2, 3]) == [2, b"hello"]
    assert await store.run_script(_COUNT_AND_ECHO, ["n", "missing"], [1, 3]) == [3, None]
    assert await store.run_script(_COUNT_AND_ECHO, ["n", "echo"], [1, 3]) is None


def test_sync_script_runs_the_same_operation(store):
    store.delete("n")
    assert store.run_script_sync(_COUNT_AND_ECHO, ["n", "none"], [1, 5]) == [1, None]
    assert store.run_script_sync(_COUNT_AND_ECHO, ["n", "none"], [9, 5]) is None


# --- The key cache's scripts (tenants/keycache.py) ----------------------------------------------


async def test_fill_writes_the_snapshot_only_while_the_generation_is_unchanged(store):
    snap, gen = keycache.snapshot_name("h"), keycache.generation_name("h")
    # No generation yet: the reader saw "0", so the write goes through.
    assert await store.run_script(keycache.FILL, [snap, gen], [0, b"v0", 60]) == 1
    assert await store.aget(snap) == b"v0"
    # An invalidation bumps the generation; a reader that started before it must not write.
    assert store.run_script_sync(keycache.INVALIDATE, [gen, snap], [600]) == 1
    assert await store.aget(snap) is None
    assert await store.run_script(keycache.FILL, [snap, gen], [0, b"stale", 60]) == 0
    assert await store.aget(snap) is None
    assert await store.run_script(keycache.FILL, [snap, gen], [1, b"v1", 60]) == 1
    assert await store.aget(snap) == b"v1"


async def test_invalidate_bumps_every_named_generation_and_drops_every_snapshot(store):
    names = [(keycache.generation_name(h), keycache.snapshot_name(h)) for h in ("a", "b")]
    for _, snap in names:
        await store.aset(snap, b"cached", 60)
    flat = [name for pair in names for name in pair]
    assert store.run_script_sync(keycache.INVALIDATE, flat, [600]) == 2
    assert store.run_script_sync(keycache.INVALIDATE, flat[:2], [600]) == 1
    gens = await store.amget(names[0][0], names[1][0])
    assert gens == [b"2", b"1"]
    assert await store.amget(names[0][1], names[1][1]) == [None, None]


def test_invalidate_gives_the_generation_a_ttl(store):
    gen, snap = keycache.generation_name("t"), keycache.snapshot_name("t")
    store.run_script_sync(keycache.INVALIDATE, [gen, snap], [1])
    _eventually(lambda: _run(store.aget(gen)) is None, "the generation to expire")


# --- Usage events and failures ------------------------------------------------------------------


async def test_memory_store_hands_usage_events_to_the_registered_sink():
    received: list[bytes] = []
    store = MemoryStateStore()
    set_usage_sink(received.append)
    try:
        await store.append_usage(b'{"e": 1}')
    finally:
        # billing registers its writer at start-up only in the embedded mode; tests run without.
        set_usage_sink(None)
    assert received == [b'{"e": 1}']
    with pytest.raises(StateUnavailable):
        await store.append_usage(b"{}")


async def test_redis_store_appends_usage_events_to_the_stream():
    store = RedisStateStore(settings.REDIS_URL)
    store.sync_client.flushdb()
    await store.append_usage(b'{"e": 1}')
    [(_, fields)] = store.sync_client.xrange(settings.GATEWAY_USAGE_STREAM)
    assert fields == {b"e": b'{"e": 1}'}


async def test_unreachable_redis_raises_state_unavailable_for_every_operation(closed_redis_url):
    store = RedisStateStore(closed_redis_url)
    operations = [
        store.aget("k"),
        store.amget("k"),
        store.aset("k", b"v", 1),
        store.adelete("k"),
        store.aincrby("k", 1, 1),
        store.run_script(_COUNT_AND_ECHO, ["a", "b"], [1, 1]),
        store.append_usage(b"{}"),
    ]
    for operation in operations:
        with pytest.raises(StateUnavailable):
            await operation
    with pytest.raises(StateUnavailable):
        store.delete("k")
    with pytest.raises(StateUnavailable):
        store.run_script_sync(_COUNT_AND_ECHO, ["a", "b"], [1, 1])
    assert store.ping() is False


@pytest.fixture
def closed_redis_url():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    finally:
        sock.close()

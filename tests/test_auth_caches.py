"""The pieces of authentication under attack: the process cache, the negative cache, the bounded
database executor, and what a failure may log."""

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from django.test import RequestFactory

from gateway.proxy import throttle
from gateway.proxy.auth import _LocalCache, authenticate, local_cache
from gateway.proxy.errors import AuthenticationFailed
from infra.db import BoundedExecutor, DatabaseBusy
from infra.state import get_state
from tenants.keycache import snapshot_name
from tenants.keys import hash_secret, shown_prefix
from tenants.models import ApiKey
from tenants.selectors import KeyPrincipal

from .factories import TeamFactory


def _principal(n: int) -> KeyPrincipal:
    return KeyPrincipal(
        key_id=n,
        key_prefix="sk-gw-abcdef",
        team_id=1,
        team_slug="t",
        org_id=1,
        project_id=None,
        user_id=None,
        allowed_models=None,
        expires_at=None,
        revoked=False,
    )


def _request(secret: str | None = None, **headers) -> object:
    if secret is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return RequestFactory().get("/v1/models", **headers)


# --- Process cache ------------------------------------------------------------------------------


def test_full_process_cache_drops_the_least_recently_used_key_only(settings):
    settings.GATEWAY_KEY_CACHE_SIZE = 3
    cache = _LocalCache()
    for n in range(3):
        cache.put(f"h{n}", _principal(n))
    assert cache.get("h0") == (True, _principal(0))  # h0 is now the most recently used
    cache.put("h3", _principal(3))
    assert len(cache) == 3
    assert cache.get("h1") == (False, None)  # the least recently used went
    assert [cache.get(h)[0] for h in ("h0", "h2", "h3")] == [True, True, True]


def test_process_cache_forgets_entries_after_the_key_cache_ttl(settings):
    settings.GATEWAY_KEY_CACHE_TTL_S = 0
    cache = _LocalCache()
    cache.put("h", _principal(1))
    assert cache.get("h") == (False, None)
    assert len(cache) == 0


def test_process_cache_remembers_unknown_keys_too(settings):
    cache = _LocalCache()
    cache.put("unknown", None)
    assert cache.get("unknown") == (True, None)


# --- Negative cache -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_unknown_key_is_remembered_in_the_process_and_in_redis():
    team = TeamFactory(allowed_models=["*"])
    secret = "sk-gw-" + "n" * 43
    with pytest.raises(AuthenticationFailed, match="invalid API key"):
        async_to_sync(authenticate)(_request(secret))
    assert get_state().sync_client.get(snapshot_name(hash_secret(secret))) == b"null"

    # The key now exists, written behind the caches' back (bulk_create sends no signal): the
    # answers below can only come from the negative entries, not from the database.
    ApiKey.objects.bulk_create(
        [
            ApiKey(
                team=team,
                name="late",
                prefix=shown_prefix(secret),
                key_hash=hash_secret(secret),
            )
        ]
    )
    with pytest.raises(AuthenticationFailed, match="invalid API key"):
        async_to_sync(authenticate)(_request(secret))  # the process's entry
    local_cache.clear()
    with pytest.raises(AuthenticationFailed, match="invalid API key"):
        async_to_sync(authenticate)(_request(secret))  # Redis's entry
    # Once both entries are gone, the database answers.
    local_cache.clear()
    get_state().delete(snapshot_name(hash_secret(secret)))
    assert async_to_sync(authenticate)(_request(secret)).team_id == team.pk


# --- Bounded database calls ---------------------------------------------------------------------


def _blocking(release: threading.Event, started: threading.Semaphore) -> str:
    started.release()
    release.wait(10)
    return "done"


async def test_calls_beyond_threads_and_queue_are_refused_at_once():
    executor = BoundedExecutor(threads=1, queue=1, timeout_s=10)
    release, started = threading.Event(), threading.Semaphore(0)
    try:
        running = asyncio.ensure_future(executor.call(_blocking, release=release, started=started))
        queued = asyncio.ensure_future(executor.call(_blocking, release=release, started=started))
        await asyncio.sleep(0)
        assert await asyncio.to_thread(started.acquire, True, 5)
        assert executor.in_flight == 2
        with pytest.raises(DatabaseBusy, match="in flight"):
            await executor.call(_blocking, release=release, started=started)
        release.set()
        assert await asyncio.gather(running, queued) == ["done", "done"]
        assert executor.in_flight == 0
    finally:
        release.set()
        executor.shutdown()


async def test_a_caller_that_waited_too_long_gets_busy_but_its_call_keeps_its_slot():
    executor = BoundedExecutor(threads=1, queue=0, timeout_s=0.2)
    release, started = threading.Event(), threading.Semaphore(0)
    try:
        with pytest.raises(DatabaseBusy, match="no database answer"):
            await executor.call(_blocking, release=release, started=started)
        # The thread is still busy with it: the bound counts real work, not waiting callers.
        assert executor.in_flight == 1
        with pytest.raises(DatabaseBusy, match="in flight"):
            await executor.call(_blocking, release=release, started=started)
        release.set()
        deadline = asyncio.get_running_loop().time() + 5
        while executor.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert executor.in_flight == 0
    finally:
        release.set()
        executor.shutdown()


async def test_a_queued_call_whose_caller_gave_up_never_runs():
    executor = BoundedExecutor(threads=1, queue=1, timeout_s=0.2)
    release, started = threading.Event(), threading.Semaphore(0)
    ran: list[str] = []
    try:
        first = asyncio.ensure_future(executor.call(_blocking, release=release, started=started))
        assert await asyncio.to_thread(started.acquire, True, 5)
        with pytest.raises(DatabaseBusy):
            await executor.call(lambda: ran.append("late"), timeout_s=0.1)
        release.set()
        await asyncio.gather(first, return_exceptions=True)
        deadline = asyncio.get_running_loop().time() + 5
        while executor.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert executor.in_flight == 0
        assert ran == []
    finally:
        release.set()
        executor.shutdown()


def test_errors_of_the_function_reach_the_caller_unchanged():
    executor = BoundedExecutor(threads=1, queue=0, timeout_s=5)

    def fails() -> None:
        raise ValueError("from the function")

    try:
        with pytest.raises(ValueError, match="from the function"):
            asyncio.run(executor.call(fails))
        assert executor.in_flight == 0
    finally:
        executor.shutdown()


# --- What a failure may show --------------------------------------------------------------------


def test_client_address_is_what_the_asgi_server_reports():
    # uvicorn has already applied X-Forwarded-For from the proxies it trusts; the header itself
    # is the client's own word.
    request = _request(REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert throttle.client_address(request) == "10.0.0.5"

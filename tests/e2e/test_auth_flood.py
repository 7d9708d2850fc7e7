"""A flood of unknown keys while the database is stuck: bounded work, quick 503s, and callers
with cached keys served throughout."""

import asyncio
import secrets
import threading

import httpx
import psycopg
from django.conf import settings

from infra.db import bounded_executor
from tests.helpers_proc import subprocess_database_url, wait_for

from .support import MESSAGES, assert_openai_error

FLOOD = 60


def _waiting_backends(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()[0]


async def _flood(gateway, good_key: str) -> tuple[list[httpx.Response], list[httpx.Response]]:
    limits = httpx.Limits(max_connections=FLOOD + 10)
    # A deadline for the whole flood: a lookup queued behind one thread would blow it.
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10, limits=limits) as http:
        unknown = [
            http.get(
                "/v1/models", headers={"authorization": f"Bearer sk-gw-{secrets.token_hex(20)}"}
            )
            for _ in range(FLOOD)
        ]
        cached = [
            http.post(
                "/v1/chat/completions",
                headers=gateway.auth(good_key),
                json={"model": "chat-fast", "messages": MESSAGES},
            )
            for _ in range(5)
        ]
        results = await asyncio.gather(*unknown, *cached)
    return list(results[:FLOOD]), list(results[FLOOD:])


def test_flood_of_unknown_keys_with_a_stuck_database_costs_bounded_work(gateway, upstream):
    with gateway.http() as http:  # the good key is now cached (process and Redis)
        warm = http.post(
            "/v1/chat/completions",
            headers=gateway.auth(),
            json={"model": "chat-fast", "messages": MESSAGES},
        )
        assert warm.status_code == 200

    observed: list[int] = []
    stop = threading.Event()
    url = subprocess_database_url()
    with psycopg.connect(url) as lock:
        # Every key lookup now waits for this lock, as it would for a database that hangs.
        lock.execute("LOCK TABLE tenants_apikey IN ACCESS EXCLUSIVE MODE")
        with psycopg.connect(
            subprocess_database_url().replace("postgres://", "postgresql://"), autocommit=True
        ) as watcher:

            def watch() -> None:
                while not stop.is_set():
                    observed.append(_waiting_backends(watcher))
                    stop.wait(0.02)

            watching = threading.Thread(target=watch)
            watching.start()
            try:
                unknown, cached = asyncio.run(_flood(gateway, gateway.key))
            finally:
                stop.set()
                watching.join()
        lock.rollback()

    for response in unknown:
        assert_openai_error(response, 503, "dependency_unavailable")
    # Never more lookups in the database than the bounded pool has threads.
    assert 1 <= max(observed) <= settings.GATEWAY_DB_THREADS
    # Callers with a cached key never waited for any of it.
    assert [r.status_code for r in cached] == [200] * 5

    # Once the database answers again, so do lookups (after the stuck calls drain).
    wait_for(lambda: bounded_executor().in_flight == 0, timeout=10, what="stuck lookups to end")
    with gateway.http() as http:
        response = http.get("/v1/models", headers={"authorization": "Bearer sk-gw-" + "z" * 43})
    assert_openai_error(response, 401, "invalid_api_key")

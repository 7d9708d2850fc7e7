"""The proxy reaches the database only on cache misses; a database restart must not strand it."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections

from .support import MESSAGES


@pytest.fixture(autouse=True)
def _drop_dead_connections_afterwards():
    """The killed connections include the one in asgiref's shared thread, which later tests use
    through sync_to_async; Django's test clients do not close broken connections there (they
    disconnect that signal), so this test closes what it broke."""
    yield

    def close_dead() -> None:
        for conn in connections.all(initialized_only=True):
            if not conn.in_atomic_block and not conn.is_usable():
                conn.close()

    # asyncio.run, not async_to_sync: outside an async_to_sync, thread-sensitive code runs on
    # asgiref's one shared thread, the one whose connection was killed.
    asyncio.run(sync_to_async(close_dead)())


def _kill_other_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_new_keys_authenticate_after_the_database_dropped_every_connection(gateway, upstream):
    with gateway.http() as http:
        first = http.post(
            "/v1/chat/completions",
            headers=gateway.auth(),
            json={"model": "chat-fast", "messages": MESSAGES},
        )
        assert first.status_code == 200
        # The gateway's pooled connections (opened by the lookup above) die, as in a restart.
        assert _kill_other_connections() >= 1
        # A key nobody has used is a cache miss: the lookup needs a live connection.
        fresh_key = gateway.issue_key(name="after-restart")
        second = http.post(
            "/v1/chat/completions",
            headers=gateway.auth(fresh_key),
            json={"model": "chat-fast", "messages": MESSAGES},
        )
    assert second.status_code == 200, second.text

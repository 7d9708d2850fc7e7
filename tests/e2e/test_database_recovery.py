"""The proxy reaches the database only on cache misses; a database restart must not strand it."""

from django.db import connection

from .support import MESSAGES


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

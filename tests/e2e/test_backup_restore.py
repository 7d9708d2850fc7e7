"""Backup and restore, as docs/operations.md#backups-and-restore says: `pg_dump --format=custom`
of the gateway's database while it serves, `pg_restore` into an empty database, an emptied Redis
database. A web process on the restored database then authenticates the same key, decrypts the
provider's credential with the same GATEWAY_ENCRYPTION_KEYS (the upstream receives it), and
records its usage events; `manage.py rotatekeys --check` passes against the restored rows."""

import subprocess
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
from django.conf import settings

from tests.helpers_net import WebProcess
from tests.helpers_proc import base_env, manage, subprocess_database_url, wait_for

from .support import MESSAGES, PROVIDER_SECRET

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

CHAT = {"model": "chat-fast", "messages": MESSAGES}


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@pytest.fixture
def restored_url(gateway):
    """A restored copy of this test's database, dropped afterwards."""
    source = subprocess_database_url()
    name = f"gateway_restore_{uuid.uuid4().hex[:8]}"
    admin = _with_db(source, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(source, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _served(process: WebProcess, key: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{process.url}/v1/chat/completions", headers=headers, json=CHAT, timeout=15)


def test_a_restored_database_serves_the_same_keys_and_credentials(
    gateway, upstream, restored_url, tmp_path
):
    source = subprocess_database_url()
    dump = tmp_path / "gateway.dump"
    subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", source], check=True
    )
    subprocess.run(["pg_restore", "--list", str(dump)], check=True, capture_output=True)
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored_url}", str(dump)],
        check=True,
    )
    # The restore procedure empties the gateway's Redis database: its state describes the
    # database after the backup, not the restored one, and is rebuilt.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()

    env = {"DATABASE_URL": restored_url, "REDIS_URL": settings.REDIS_URL}
    check = manage("rotatekeys", "--check", env=base_env(**env))
    assert check.returncode == 0, check.stdout + check.stderr
    assert PROVIDER_SECRET not in check.stdout + check.stderr

    process = WebProcess(tmp_path, **env, WEB_CONCURRENCY="1").start()
    try:
        response = _served(process, gateway.key)
        assert response.status_code == 200, response.text
        sent = upstream.received("/v1/chat/completions")[-1]
        assert sent.headers["authorization"] == f"Bearer {PROVIDER_SECRET}"
        assert _served(process, gateway.key).status_code == 200
        # Both requests' usage events are recorded (the stream, for a worker to store).
        wait_for(lambda: _stream_len() == 2, timeout=15, what="two usage events")
    finally:
        process.stop()


def _stream_len() -> int:
    return redis.Redis.from_url(settings.REDIS_URL).xlen(settings.GATEWAY_USAGE_STREAM)

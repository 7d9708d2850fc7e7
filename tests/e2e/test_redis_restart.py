"""What a Redis restart without persistence loses, and what the gateway rebuilds by itself.

A web process (uvicorn subprocess) runs against a redis-server of the test's own (`--save ""
--appendonly no`); the test restarts it, which empties it, as FLUSHALL would. Afterwards:
keys, routing and policies are read from Postgres again, a revoked key stays revoked, budget
counters are rebuilt from the usage rows in Postgres, rate limits are enforced again from a
fresh window, breakers start closed and reopen on the next failures. Usage events stored
before the restart are safe; events still waiting in the stream are lost, which is why
production Redis keeps AOF or RDB (docs/operations.md, "Redis restart").
"""

import contextlib
import time

import httpx
import pytest
from django.conf import settings

from billing.ingest import ingest_usage_stream
from billing.models import UsageRecord
from infra.state import get_state
from routing import health
from tenants.models import ApiKey
from tenants.services import api_key_revoke
from tests.helpers_net import RedisServer, WebProcess
from tests.helpers_proc import subprocess_database_url, wait_for

from .budget_support import ACTUAL_MICROS, OUTPUT_TOKENS, set_team_policy
from .health_support import deployment_id
from .support import MESSAGES, assert_openai_error

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

CHAT = {"model": "chat-fast", "messages": MESSAGES, "max_tokens": OUTPUT_TOKENS}
DOWN = {"model": "chat-down", "messages": MESSAGES}


@pytest.fixture
def web(gateway, redis_server, tmp_path):
    process = WebProcess(
        tmp_path,
        WEB_CONCURRENCY="1",
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=redis_server.url,
        # Short process caches, so what the test sees after the restart comes from Redis or
        # Postgres, not from what the process remembered.
        GATEWAY_KEY_CACHE_TTL_S="0.2",
        GATEWAY_ROUTING_CACHE_TTL_S="0.2",
        GATEWAY_POLICY_CACHE_TTL_S="0.2",
        GATEWAY_HEALTH_CACHE_S="0",
    ).start()
    yield process
    process.stop()
    print(process.log.read_text()[-4000:])


@contextlib.contextmanager
def redis_of(server: RedisServer):
    """This process's Redis clients (ingestion, health reads) pointed at the test's server."""
    saved = settings.REDIS_URL
    settings.REDIS_URL = server.url
    get_state.cache_clear()
    try:
        yield get_state().sync_client
    finally:
        settings.REDIS_URL = saved
        get_state.cache_clear()


def restart(server: RedisServer) -> None:
    server.stop()
    server.start()  # same port, nothing kept
    with redis_of(server) as client:
        assert client.dbsize() == 0


def _ids(responses: list[httpx.Response]) -> set[str]:
    return {r.headers["x-request-id"] for r in responses}


def _stream_len(server: RedisServer) -> int:
    with redis_of(server) as client:
        return client.xlen(settings.GATEWAY_USAGE_STREAM)


def _settled(server: RedisServer, count: int) -> None:
    """Usage is appended just after each answer: wait for `count` events in the stream
    (ingestion removes what it stored, so the stream holds only what no worker has read)."""
    wait_for(
        lambda: _stream_len(server) >= count,
        timeout=10,
        what=f"{count} usage events in the stream",
    )


def _ingest(server: RedisServer) -> None:
    with redis_of(server):
        ingest_usage_stream(consumer="restart-test")


def test_keys_usage_and_revocations_survive_and_only_the_stream_backlog_is_lost(
    gateway, upstream, redis_server, web
):
    revoked_secret = gateway.issue_key(name="revoked")
    stored = [web.post("/v1/chat/completions", gateway.key, CHAT) for _ in range(3)]
    assert {r.status_code for r in stored} == {200}
    _settled(redis_server, 3)
    _ingest(redis_server)  # these three are rows in Postgres now
    assert web.get("/v1/models", revoked_secret).status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(name="revoked"))

    # Served, their events appended to the stream, but no worker has read them yet.
    backlog = [web.post("/v1/chat/completions", gateway.key, CHAT) for _ in range(2)]
    assert {r.status_code for r in backlog} == {200}
    _settled(redis_server, 2)

    restart(redis_server)

    # Keys, routing and policies come back from Postgres; the revocation is not forgotten.
    after = [web.post("/v1/chat/completions", gateway.key, CHAT) for _ in range(3)]
    assert {r.status_code for r in after} == {200}, [r.text for r in after]
    assert_openai_error(web.get("/v1/models", revoked_secret), 401)
    assert web.get("/v1/models", gateway.issue_key(name="new")).status_code == 200

    _settled(redis_server, 3)
    _ingest(redis_server)  # the consumer group is created again on the empty stream
    rows = set(UsageRecord.objects.values_list("request_id", flat=True))
    assert rows == _ids(stored) | _ids(after)
    # The documented loss: events that were only in the stream when Redis restarted.
    assert not rows & _ids(backlog)


def test_a_budget_counter_is_rebuilt_from_postgres_not_restarted_at_zero(
    gateway, upstream, exact_usage, redis_server, web
):
    # Room for three requests and half of a fourth.
    set_team_policy(gateway.team, monthly_budget_usd=(3 * ACTUAL_MICROS + 700) / 1_000_000)
    time.sleep(0.3)  # the web process's policy cache
    served = [web.post("/v1/chat/completions", gateway.key, CHAT) for _ in range(3)]
    assert {r.status_code for r in served} == {200}
    _settled(redis_server, 3)
    _ingest(redis_server)
    assert UsageRecord.objects.count() == 3

    restart(redis_server)

    # An empty counter would admit three more; the one rebuilt from the usage log admits none.
    refused = web.post("/v1/chat/completions", gateway.key, CHAT)
    assert_openai_error(refused, 429, "budget_exceeded")
    with redis_of(redis_server) as client:
        rebuilt = [int(client.get(k)) for k in client.scan_iter(match="gw:bud:team:*")]
    assert 3 * ACTUAL_MICROS in rebuilt


def test_a_rate_limit_window_starts_again_and_is_enforced(gateway, upstream, redis_server, web):
    set_team_policy(gateway.team, rpm=4)
    time.sleep(0.3)
    before = [web.post("/v1/chat/completions", gateway.key, CHAT).status_code for _ in range(5)]
    assert before == [200] * 4 + [429]

    restart(redis_server)

    # The window's count was in Redis: a fresh window, at most one more window's worth, then
    # the limit holds again.
    after = [web.post("/v1/chat/completions", gateway.key, CHAT).status_code for _ in range(5)]
    assert after == [200] * 4 + [429]


def test_breakers_start_closed_after_a_restart_and_reopen_on_failures(
    gateway, upstream, redis_server, web
):
    threshold = settings.GATEWAY_BREAKER_CONSECUTIVE_FAILURES
    down = deployment_id("fake-chat-down")

    def state() -> str | None:
        with redis_of(redis_server):
            found = health.current_sync(down)
        return found.state if found is not None else None

    for _ in range(threshold):
        web.post("/v1/chat/completions", gateway.key, DOWN)
    wait_for(lambda: state() == "open", timeout=10, what="the breaker to open")

    restart(redis_server)
    assert state() == "closed"  # forgotten: the deployment is tried again

    for _ in range(threshold):
        web.post("/v1/chat/completions", gateway.key, DOWN)
    wait_for(lambda: state() == "open", timeout=10, what="the breaker to open again")

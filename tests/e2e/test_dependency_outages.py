"""A web process (uvicorn subprocess) whose Postgres or Redis goes away, behind TCP proxies this
module cuts: quick 503s instead of queues, cached keys still served, no usage event lost."""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from billing.ingest import ingest_usage_stream
from billing.models import UsageRecord
from infra import usage_event
from infra.spool import Spool
from tests.helpers_net import RedisServer, TcpProxy, WebProcess, url_through
from tests.helpers_proc import subprocess_database_url, wait_for
from tests.helpers_usage import redis

from .support import MESSAGES, assert_openai_error

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

CHAT = {"model": "chat-fast", "messages": MESSAGES}


@pytest.fixture
def db_proxy(django_db_setup):
    db = urlsplit(os.environ["DATABASE_URL"])
    proxy = TcpProxy(db.port or 5432, db.hostname).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def redis_proxy():
    redis = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy(redis.port or 6379, redis.hostname).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def web_factory(tmp_path):
    started: list[WebProcess] = []

    def _start(**env: str) -> WebProcess:
        process = WebProcess(tmp_path, **{"WEB_CONCURRENCY": "1", **env}).start()
        started.append(process)
        return process

    yield _start
    for process in started:
        process.stop()
        print(process.log.read_text()[-4000:])


def _spooled(process: WebProcess) -> list[usage_event.UsageEvent]:
    spool = Spool(process.log.parent / "spool")
    return [
        usage_event.decode(line)
        for path in spool.files()
        for line in path.read_bytes().splitlines()
    ]


# --- Postgres down ------------------------------------------------------------------------------


def test_postgres_down_answers_uncached_keys_503_quickly_and_all_at_once(
    gateway, db_proxy, web_factory
):
    fresh = [gateway.issue_key(name=f"fresh{i}") for i in range(10)]  # valid, never looked up
    web = web_factory(
        DATABASE_URL=url_through(subprocess_database_url(), db_proxy), REDIS_URL=settings.REDIS_URL
    )
    assert web.get("/v1/models", gateway.key).status_code == 200  # cached, routing table loaded

    db_proxy.cut()
    unknown = [f"sk-gw-unknown{i:02d}" + "u" * 34 for i in range(10)]
    with ThreadPoolExecutor(21) as pool:
        # The per-request deadline is the assertion: queued one at a time behind a 30 s pool
        # timeout (as before), most of these would blow it.
        lookups = list(pool.map(lambda k: web.get("/v1/models", k, timeout=5), fresh + unknown))
        cached = pool.submit(web.get, "/v1/models", gateway.key, 5).result()

    for response in lookups:
        error = assert_openai_error(response, 503, "dependency_unavailable")
        assert "database" in error["message"]
    assert cached.status_code == 200  # a cached key does not need the database

    db_proxy.restore()
    wait_for(
        lambda: web.get("/v1/models", fresh[0]).status_code == 200,
        timeout=20,
        what="lookups to work again once the database is back",
    )


def test_a_database_that_stops_answering_does_not_hold_requests_for_the_routing_table(
    gateway, upstream, db_proxy, web_factory
):
    web = web_factory(
        DATABASE_URL=url_through(subprocess_database_url(), db_proxy),
        GATEWAY_KEY_CACHE_TTL_S="120",  # the key itself needs no database meanwhile
        GATEWAY_ROUTING_CACHE_TTL_S="1",
        GATEWAY_DB_WAIT_TIMEOUT_S="0.5",
    )
    assert web.post("/v1/chat/completions", gateway.key, CHAT).status_code == 200

    # The routing table's rows go unanswered from now on; the table itself turns stale.
    db_proxy.hold_replies_containing(b"fake-chat-fast")
    try:
        time.sleep(1.5)  # past the TTL: the next request would wait for a rebuild
        # A deadline bounds the wait, not a timing assertion: held, it would never answer.
        served = web.post("/v1/chat/completions", gateway.key, CHAT, timeout=5)
        assert served.status_code == 200, served.text
    finally:
        db_proxy.release()


# --- Redis restarted ----------------------------------------------------------------------------


def test_after_a_redis_restart_no_request_fails_on_a_dead_connection(
    gateway, web_factory, tmp_path
):
    redis_server = RedisServer(tmp_path).start()
    try:
        web = web_factory(DATABASE_URL=subprocess_database_url(), REDIS_URL=redis_server.url)
        keys = [gateway.issue_key(name=f"k{i}") for i in range(6)]
        with ThreadPoolExecutor(3) as pool:  # several pooled Redis connections
            assert (
                list(pool.map(lambda k: web.get("/v1/models", k).status_code, keys[:3]))
                == [200] * 3
            )

        redis_server.stop()
        redis_server.start()

        # New keys: each lookup needs Redis, on connections that all died in the restart.
        with ThreadPoolExecutor(3) as pool:
            statuses = list(pool.map(lambda k: web.get("/v1/models", k).status_code, keys[3:]))
        assert statuses == [200] * 3
    finally:
        redis_server.stop()


# --- Redis and Postgres down --------------------------------------------------------------------


def test_with_redis_and_postgres_down_a_cached_key_is_served_and_its_usage_lands_once(
    gateway, upstream, db_proxy, redis_proxy, web_factory
):
    web = web_factory(
        DATABASE_URL=url_through(subprocess_database_url(), db_proxy),
        REDIS_URL=url_through(settings.REDIS_URL, redis_proxy),
        GATEWAY_KEY_CACHE_TTL_S="120",  # the key outlives the outage in the process cache
        GATEWAY_SPOOL_REPLAY_INTERVAL_S="0.5",
    )
    warm = web.post("/v1/chat/completions", gateway.key, CHAT)
    assert warm.status_code == 200
    # Usage settles after the response is sent: let the warm-up's event reach the stream
    # before the cut, or it is (rightly) spooled too.
    wait_for(
        lambda: redis().xlen(settings.GATEWAY_USAGE_STREAM) == 1,
        timeout=10,
        what="the warm-up's usage event to reach the stream",
    )

    db_proxy.cut()
    redis_proxy.cut()
    served = web.post("/v1/chat/completions", gateway.key, CHAT)
    assert served.status_code == 200, served.text
    request_id = served.headers["x-request-id"]
    # Neither store took the event; it is in the local spool, not lost.
    spooled = wait_for(lambda: _spooled(web), timeout=15, what="the usage event to be spooled")
    assert [e.request_id for e in spooled] == [request_id]
    assert spooled[0].api_key_id == gateway.api_key.pk

    db_proxy.restore()
    redis_proxy.restore()
    wait_for(lambda: not _spooled(web), timeout=20, what="the spool to be replayed")

    ingest_usage_stream(consumer="outage-test")
    stored = list(UsageRecord.objects.values_list("request_id", flat=True))
    assert sorted(stored) == sorted([warm.headers["x-request-id"], request_id])


# --- The embedded writer ------------------------------------------------------------------------


def test_embedded_writer_spools_a_batch_the_database_refused_and_stores_it_later(
    gateway, upstream, db_proxy, web_factory
):
    # No Redis: in-process state, and usage goes through the writer thread.
    web = web_factory(
        DATABASE_URL=url_through(subprocess_database_url(), db_proxy),
        REDIS_URL=None,
        CELERY_BROKER_URL=None,
        CELERY_TASK_ALWAYS_EAGER=None,
        GATEWAY_KEY_CACHE_TTL_S="120",
        GATEWAY_SPOOL_REPLAY_INTERVAL_S="0.5",
    )
    warm = web.post("/v1/chat/completions", gateway.key, CHAT)
    assert warm.status_code == 200
    wait_for(
        lambda: UsageRecord.objects.filter(request_id=warm.headers["x-request-id"]).exists(),
        timeout=15,
        what="the writer to store the first row",
    )

    db_proxy.cut()
    served = web.post("/v1/chat/completions", gateway.key, CHAT)
    assert served.status_code == 200, served.text
    request_id = served.headers["x-request-id"]
    # The writer retries, gives up on the database for now, and spools the batch.
    spooled = wait_for(lambda: _spooled(web), timeout=30, what="the writer to spool the batch")
    assert [e.request_id for e in spooled] == [request_id]

    db_proxy.restore()
    wait_for(
        lambda: UsageRecord.objects.filter(request_id=request_id).exists(),
        timeout=30,
        what="the replayed event to be stored",
    )
    wait_for(lambda: not _spooled(web), timeout=10, what="the spool to be emptied")
    assert UsageRecord.objects.filter(request_id=request_id).count() == 1
    assert UsageRecord.objects.count() == 2

"""Admission when a dependency is down (docs/policy.md, failure modes), in a web process behind
TCP proxies this module cuts:

- Postgres down: limits and budgets keep working from Redis;
- Redis down: rate limits fall back to per-process limiters; a hard budget fails closed with
  503 (or open, when configured so), a soft one allows.
"""

import os
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from policies.models import Policy
from tests.helpers_net import TcpProxy, WebProcess, url_through
from tests.helpers_proc import subprocess_database_url

from .support import MESSAGES, assert_openai_error

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

CHAT = {"model": "chat-fast", "messages": MESSAGES, "max_tokens": 50}


@pytest.fixture
def proxies(django_db_setup):
    db = urlsplit(os.environ["DATABASE_URL"])
    redis = urlsplit(settings.REDIS_URL)
    started = {
        "db": TcpProxy(db.port or 5432, db.hostname).start(),
        "redis": TcpProxy(redis.port or 6379, redis.hostname).start(),
    }
    yield started
    for proxy in started.values():
        proxy.stop()


@pytest.fixture
def web_factory(tmp_path, proxies):
    started: list[WebProcess] = []

    def _start(**env: str) -> WebProcess:
        env = {
            "WEB_CONCURRENCY": "1",
            "DATABASE_URL": url_through(subprocess_database_url(), proxies["db"]),
            "REDIS_URL": url_through(settings.REDIS_URL, proxies["redis"]),
            # The key and the policy outlive the outages in the process's caches.
            "GATEWAY_KEY_CACHE_TTL_S": "300",
            **env,
        }
        process = WebProcess(tmp_path, **env).start()
        started.append(process)
        return process

    yield _start
    for process in started:
        process.stop()
        print(process.log.read_text()[-4000:])


def test_postgres_down_admission_still_works_from_redis(gateway, upstream, proxies, web_factory):
    Policy.objects.create(team=gateway.team, rpm=3, monthly_budget_usd=Decimal(10))
    web = web_factory()
    assert web.post("/v1/chat/completions", gateway.key, CHAT).status_code == 200

    proxies["db"].cut()
    statuses = [web.post("/v1/chat/completions", gateway.key, CHAT).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_redis_down_hard_budget_fails_closed(gateway, upstream, proxies, web_factory):
    Policy.objects.create(team=gateway.team, monthly_budget_usd=Decimal(10))
    web = web_factory()
    assert web.post("/v1/chat/completions", gateway.key, CHAT).status_code == 200

    proxies["redis"].cut()
    refused = web.post("/v1/chat/completions", gateway.key, CHAT)
    error = assert_openai_error(refused, 503, "dependency_unavailable")
    assert "state store" in error["message"]


def test_redis_down_fail_open_allows_hard_budgets(gateway, upstream, proxies, web_factory):
    Policy.objects.create(team=gateway.team, monthly_budget_usd=Decimal(10))
    web = web_factory(GATEWAY_BUDGET_FAIL_OPEN="true")
    assert web.post("/v1/chat/completions", gateway.key, CHAT).status_code == 200

    proxies["redis"].cut()
    assert web.post("/v1/chat/completions", gateway.key, CHAT).status_code == 200


def test_redis_down_limits_fall_back_to_the_process(gateway, upstream, proxies, web_factory):
    Policy.objects.create(team=gateway.team, rpm=2, monthly_budget_usd=Decimal(10))
    Policy.objects.filter(team=gateway.team).update(budget_mode="soft")
    web = web_factory()
    assert web.post("/v1/chat/completions", gateway.key, CHAT).status_code == 200

    proxies["redis"].cut()
    # This process counts alone now, from zero: its own limiter allows the full 2 per minute.
    statuses = [web.post("/v1/chat/completions", gateway.key, CHAT).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]

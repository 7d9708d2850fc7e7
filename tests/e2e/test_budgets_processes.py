"""The budget race again, spread over two web processes (uvicorn subprocesses, as in production)
sharing Redis and Postgres: the reservation is atomic in Redis, so the processes cannot overspend
between them, and rate limits are exact across them."""

import math
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.conf import settings

from policies.models import Policy
from tests.helpers_net import WebProcess
from tests.helpers_proc import subprocess_database_url

from .budget_support import (
    ACTUAL_MICROS,
    OUTPUT_TOKENS,
    budget_counters,
    micros,
)
from .support import MESSAGES, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    logs = tmp_path_factory.mktemp("budget-processes")
    env = {
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "WEB_CONCURRENCY": "1",
        "GATEWAY_POLICY_CACHE_TTL_S": str(POLICY_TTL_S),
        "GATEWAY_ROUTING_CACHE_TTL_S": "0.5",
    }
    processes = [WebProcess(logs, **env) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(WebProcess.start, processes))
    yield processes
    for process in processes:
        process.stop()


RPM = 20
POLICY_TTL_S = 0.5


def _create_policy(**fields) -> None:
    """A policy the web processes serve from the next request on: they pick changes up within
    their snapshot's TTL, and a request finding it older waits for the rebuild."""
    Policy.objects.create(**fields)
    time.sleep(2 * POLICY_TTL_S)


def _spread(web, key: str, count: int, body: dict) -> list[int]:
    """`count` requests at once, alternating between the processes; their statuses."""

    def one(i: int) -> int:
        return web[i % 2].post("/v1/chat/completions", key, body, timeout=30).status_code

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_budget_race_across_two_processes(web, gateway, exact_usage):
    exact_usage.delay_s = 0.3
    _create_policy(
        team=gateway.team, monthly_budget_usd=Decimal(5 * ACTUAL_MICROS + 700) / 1_000_000
    )
    body = {"model": "chat-fast", "messages": MESSAGES, "max_tokens": OUTPUT_TOKENS}
    statuses = _spread(web, gateway.key, 50, body)
    assert statuses.count(200) == 5
    assert statuses.count(429) == 45
    records = wait_for_usage_records(50)
    spent, reserved = budget_counters("team", gateway.team.pk)
    assert reserved == 0
    assert spent == micros(records) == 5 * ACTUAL_MICROS


def test_rate_limit_exact_across_two_processes(web, gateway, upstream):
    body = {"model": "chat-fast", "messages": MESSAGES}
    _create_policy(team=gateway.team, rpm=RPM)
    started = time.monotonic()
    statuses = _spread(web, gateway.key, 2 * RPM, body)
    elapsed = time.monotonic() - started
    # One minute's allowance between both processes (never one each), plus what refilled at
    # RPM per minute while the burst was being sent.
    assert RPM <= statuses.count(200) <= RPM + math.ceil(elapsed * RPM / 60)
    assert statuses.count(200) + statuses.count(429) == 2 * RPM

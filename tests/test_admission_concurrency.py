"""Admission under concurrency on real Redis (threads, and two OS processes sharing it), and
when Redis is unreachable (per-process limiters; hard budgets fail closed, or open if told)."""

import asyncio
import logging
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from infra.state.redis import RedisStateStore
from policies.admission import AdmissionRefused, AdmissionUnavailable, Admitter

from . import helpers_admission as fixtures
from .helpers_admission import Seeder, budget, limit, request
from .helpers_proc import PYTHON, ROOT, base_env

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

closed_redis_url = fixtures.closed_redis_url


def _from_threads(req, calls: int) -> list:
    """`calls` admissions at once from 50 threads, each with its own event loop and connection,
    like requests arriving at many workers."""
    admitter = Admitter(RedisStateStore(settings.REDIS_URL))

    def one(_):
        try:
            return asyncio.run(admitter.admit(req, seed=Seeder()))
        except AdmissionRefused as refused:
            return refused

    with ThreadPoolExecutor(max_workers=50) as pool:
        return list(pool.map(one, range(calls)))


def _count(results) -> int:
    return sum(not isinstance(r, AdmissionRefused) for r in results)


def test_rpm_is_exact_under_200_concurrent_calls_from_threads():
    # 20 per minute: one more only every 3 s, far longer than the burst takes.
    results = _from_threads(request([limit(rpm=20)]), 200)
    assert _count(results) == 20
    refused = [r for r in results if isinstance(r, AdmissionRefused)]
    assert {r.kind for r in refused} == {"requests"}
    assert all(r.retry_after_s >= 1 for r in refused)


def test_tpm_is_exact_under_200_concurrent_calls_from_threads():
    results = _from_threads(request([limit(tpm=1000)], tokens=100), 200)
    assert _count(results) == 10


def test_budget_is_exact_under_concurrent_calls_from_threads():
    results = _from_threads(request(budgets=[budget(5)], prompt_micros=1_000_000), 50)
    assert _count(results) == 5


def _processes(kind: str, limit_value: int, calls: int) -> list[int]:
    env = base_env(REDIS_URL=settings.REDIS_URL, DATABASE_URL=None, WEB_CONCURRENCY="1")
    start_at = time.time() + 4  # both interpreters up and waiting before the first call
    args = [PYTHON, "-m", "tests.helpers_admission", kind, str(limit_value), str(calls)]
    procs = [
        subprocess.Popen(
            [*args, str(start_at)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    return [int(out.strip()) for out in outputs]


def test_rpm_is_exact_across_two_processes_sharing_redis():
    # Each process alone would admit 30 of its 100: together they admit 30, not 60.
    assert sum(_processes("rpm", 30, 100)) == 30


def test_a_budget_is_exact_across_two_processes_sharing_redis():
    assert sum(_processes("budget", 5, 25)) == 5


# --- Redis unreachable --------------------------------------------------------------------------


async def test_redis_down_limits_fall_back_to_this_process(closed_redis_url, caplog):
    admitter = Admitter(RedisStateStore(closed_redis_url))
    req = request([limit(rpm=2)], budgets=[budget(5, hard=False)])
    with caplog.at_level(logging.WARNING, logger="policies.admission"):
        first = await admitter.admit(req, seed=Seeder())
        await admitter.admit(req, seed=Seeder())
        with pytest.raises(AdmissionRefused) as refused:
            await admitter.admit(req, seed=Seeder())
    assert first.local is True
    assert first.reserved_micros == 0  # soft budgets are not checked without Redis
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.value.message == "team 'search' allows 2 requests per minute"
    # Logged once, not once per request.
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1
    # Another process (here: another admitter) has limiters of its own.
    other = Admitter(RedisStateStore(closed_redis_url))
    assert (await other.admit(req, seed=Seeder())).local is True


async def test_redis_down_hard_budgets_fail_closed(closed_redis_url):
    admitter = Admitter(RedisStateStore(closed_redis_url))
    req = request([limit(rpm=5)], budgets=[budget(5)])
    with pytest.raises(AdmissionUnavailable, match="team 'search' budget cannot be checked"):
        await admitter.admit(req, seed=Seeder())


async def test_redis_down_hard_budgets_fail_open_when_told_loudly(
    closed_redis_url, settings, caplog
):
    settings.GATEWAY_BUDGET_FAIL_OPEN = True
    admitter = Admitter(RedisStateStore(closed_redis_url))
    with caplog.at_level(logging.ERROR, logger="policies.admission"):
        admitted = await admitter.admit(request(budgets=[budget(5)]), seed=Seeder())
    assert admitted.local is True
    assert admitted.headers == {}
    assert any("WITHOUT checking hard budgets" in r.getMessage() for r in caplog.records)


async def test_admission_returns_to_redis_once_it_is_back(closed_redis_url):
    admitter = Admitter(RedisStateStore(closed_redis_url))
    req = request([limit(rpm=5)])
    assert (await admitter.admit(req, seed=Seeder())).local is True
    admitter.store = RedisStateStore(settings.REDIS_URL)  # Redis is reachable again
    await asyncio.sleep(1.05)  # after a failure, Redis is tried again a second later
    assert (await admitter.admit(req, seed=Seeder())).local is False

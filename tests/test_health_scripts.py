"""The breaker scripts, Lua and Python twin held to the same cases (like test_state_store.py)."""

import json
import time

import pytest
from django.conf import settings

from infra.state.memory import MemoryStateStore
from infra.state.redis import RedisStateStore
from routing import health
from routing import health_scripts as scripts

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

KEY = health.key(7)


@pytest.fixture(params=["redis", "memory"])
def store(request):
    if request.param == "memory":
        return MemoryStateStore()
    store = RedisStateStore(settings.REDIS_URL)
    store.sync_client.flushdb()
    return store


@pytest.fixture(autouse=True)
def _breaker(settings):
    settings.GATEWAY_BREAKER_CONSECUTIVE_FAILURES = 3
    settings.GATEWAY_BREAKER_MIN_OUTCOMES = 4
    settings.GATEWAY_BREAKER_ERROR_RATE_PCT = 50
    settings.GATEWAY_BREAKER_WINDOW_S = 30
    settings.GATEWAY_BREAKER_OPEN_S = 0.3
    settings.GATEWAY_BREAKER_MAX_OPEN_S = 1.0
    settings.GATEWAY_BREAKER_HALF_OPEN_PROBES = 1
    settings.GATEWAY_HEALTH_EWMA_ALPHA = 0.5
    settings.GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN = 1


def report(store, kind, *, latency_ms=None, retry_after_s=None, probe=False, check=False):
    args = health._report_args(kind, latency_ms, retry_after_s, probe, check)
    raw = store.run_script_sync(scripts.REPORT, [KEY], args)
    return json.loads(raw)


def state(store) -> health.Health:
    raw = store.run_script_sync(_READ, [KEY], [])
    return health.health_of(json.loads(raw) if raw else {}, time.time() * 1000)


def acquire(store) -> int:
    return store.run_script_sync(scripts.ACQUIRE_PROBE, [KEY], [1, 60_000, 3600])


_READ = scripts.Script("read", "return redis.call('GET', KEYS[1])", lambda v, k, a: v.get(k[0]))


def wait_until_half_open(store):
    deadline = time.monotonic() + 5
    while state(store).state != health.HALF_OPEN:
        assert time.monotonic() < deadline, "the breaker never half-opened"
        time.sleep(0.05)


def test_consecutive_failures_open_the_breaker(store):
    report(store, scripts.FAIL)
    report(store, scripts.FAIL)
    assert state(store).state == health.CLOSED and state(store).usable
    report(store, scripts.FAIL)
    opened = state(store)
    assert opened.state == health.OPEN and not opened.usable
    assert 0 < opened.retry_in_s <= 0.3


def test_a_success_resets_the_consecutive_count(store, settings):
    settings.GATEWAY_BREAKER_MIN_OUTCOMES = 100  # the error rate alone would open it
    report(store, scripts.FAIL)
    report(store, scripts.FAIL)
    report(store, scripts.OK)
    report(store, scripts.FAIL)
    assert state(store).state == health.CLOSED
    assert state(store).consecutive_failures == 1


def test_error_rate_over_the_minimum_outcomes_opens(store):
    for kind in (scripts.FAIL, scripts.OK, scripts.FAIL):
        report(store, kind)
    assert state(store).state == health.CLOSED  # 2 of 3: below the minimum of 4 outcomes
    report(store, scripts.OK)
    assert state(store).state == health.CLOSED  # 2 of 4 is 50 %, but the last one succeeded
    # ... the rate is checked on a failure: 3 of 5 failed.
    report(store, scripts.FAIL)
    assert state(store).state == health.OPEN


def test_half_open_lets_one_probe_through_and_its_success_closes(store):
    for _ in range(3):
        report(store, scripts.FAIL)
    assert acquire(store) == 0  # open: nobody passes
    wait_until_half_open(store)
    assert state(store).usable
    assert acquire(store) == 1
    assert acquire(store) == 0  # one probe at a time
    assert not state(store).usable
    report(store, scripts.OK, latency_ms=40, probe=True)
    closed = state(store)
    assert closed.state == health.CLOSED and closed.usable
    assert acquire(store) == 1  # closed: everyone passes


def test_a_failed_probe_reopens_for_twice_as_long_up_to_the_maximum(store):
    for _ in range(3):
        report(store, scripts.FAIL)
    wait_until_half_open(store)
    assert acquire(store) == 1
    s = report(store, scripts.FAIL, probe=True)
    assert s["s"] == 1 and s["d"] == 600
    assert state(store).state == health.OPEN
    wait_until_half_open(store)
    assert acquire(store) == 1
    s = report(store, scripts.FAIL, probe=True)
    assert s["d"] == 1000  # capped at GATEWAY_BREAKER_MAX_OPEN_S


def test_a_released_probe_frees_its_slot_without_an_outcome(store):
    for _ in range(3):
        report(store, scripts.FAIL)
    wait_until_half_open(store)
    assert acquire(store) == 1
    report(store, scripts.RELEASE, probe=True)
    assert state(store).state == health.HALF_OPEN
    assert acquire(store) == 1


def test_rate_limited_cools_for_retry_after_without_counting_a_failure(store):
    s = report(store, scripts.LIMITED, retry_after_s=0.4)
    assert s.get("f", 0) == 0 and s["wf"] == 0
    cooling = state(store)
    assert cooling.state == health.COOLING and not cooling.usable
    assert 0.2 < cooling.retry_in_s <= 0.4
    time.sleep(0.45)
    assert state(store).state == health.CLOSED


def test_retry_after_is_capped(store, settings):
    settings.GATEWAY_BREAKER_MAX_COOLDOWN_S = 2
    report(store, scripts.LIMITED, retry_after_s=3600)
    assert state(store).retry_in_s <= 2


def test_latency_is_an_ewma(store):
    report(store, scripts.OK, latency_ms=100)
    assert state(store).latency_ms == pytest.approx(100)
    report(store, scripts.OK, latency_ms=200)
    assert state(store).latency_ms == pytest.approx(150)
    report(store, scripts.FAIL)
    assert state(store).latency_ms == pytest.approx(150)  # failures carry no latency


def test_a_failed_health_check_opens_at_once_and_a_good_one_closes(store):
    report(store, scripts.FAIL, check=True)
    assert state(store).state == health.OPEN
    # Still open (not yet half-open): a successful check closes it anyway.
    report(store, scripts.OK, latency_ms=5, check=True)
    assert state(store).state == health.CLOSED


def test_a_live_success_does_not_close_a_breaker_that_is_still_open(store):
    for _ in range(3):
        report(store, scripts.FAIL)
    report(store, scripts.OK)  # a request that started before the breaker opened
    assert state(store).state == health.OPEN

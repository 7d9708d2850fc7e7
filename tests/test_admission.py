"""Admission's rate limits, held to the same cases on Redis (Lua) and in process (the twin).

Every test with the `admitter` fixture runs twice: against the test Redis and against the
embedded in-process store, so the two scripts cannot drift. Budgets: test_admission_budgets.py;
concurrency and outages: test_admission_concurrency.py.
"""

import asyncio
import time

import pytest
from django.conf import settings

from infra.state import StateUnavailable
from infra.state.memory import MemoryStateStore
from infra.state.redis import RedisStateStore
from policies.admission import AdmissionRefused, Admitter, underestimates
from policies.ratelimit_headers import duration, ratelimit_headers

from . import helpers_admission as fixtures
from .helpers_admission import Seeder, budget, limit, request

# Shared fixtures: each test runs on Redis and in process (the script's twin).
store, events, admitter = fixtures.store, fixtures.events, fixtures.admitter
closed_redis_url = fixtures.closed_redis_url

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


async def _admitted(admitter, req, n: int) -> int:
    """How many of n requests (one after another) are admitted."""
    count = 0
    for _ in range(n):
        try:
            await admitter.admit(req, seed=Seeder())
            count += 1
        except AdmissionRefused:
            pass
    return count


# --- Headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0s"),
        (-5, "0s"),
        (1, "1ms"),
        (20_000, "20ms"),
        (999_000, "999ms"),
        (1_000_000, "1s"),
        (1_500_000, "1.5s"),
        (1_234_567, "1.235s"),
        (60_000_000, "1m0s"),
        (360_000_000, "6m0s"),
        (90_500_000, "1m30.5s"),
        (3_600_000_000, "1h0m0s"),
    ],
)
def test_durations_are_written_as_openai_writes_them(us, text):
    assert duration(us) == text


def test_headers_name_each_dimension_and_leave_out_one_without_scopes():
    assert ratelimit_headers([600, 599, 100_000, -1, 0, 0]) == {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "599",
        "x-ratelimit-reset-requests": "100ms",
    }
    assert ratelimit_headers([-1, 0, 0, 1000, -3, 6_000_000])["x-ratelimit-remaining-tokens"] == (
        "0"
    )


async def test_no_scope_means_nothing_to_admit(admitter):
    assert await admitter.admit(request(), seed=Seeder()) is None


# --- Requests per minute ------------------------------------------------------------------------


async def test_rpm_admits_the_minute_allowance_then_refuses_naming_the_limit(admitter):
    req = request([limit(rpm=5)])
    first = await admitter.admit(req, seed=Seeder())
    assert first.headers["x-ratelimit-limit-requests"] == "5"
    assert first.headers["x-ratelimit-remaining-requests"] == "4"
    assert first.local is False
    assert await _admitted(admitter, req, 4) == 4
    with pytest.raises(AdmissionRefused) as refused:
        await admitter.admit(req, seed=Seeder())
    error = refused.value
    assert error.kind == "requests"
    assert error.code == "rate_limit_exceeded"
    assert error.message == "team 'search' allows 5 requests per minute"
    # One request back every 12 s.
    assert 11 <= error.retry_after_s <= 12
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"].endswith("s")


async def test_headers_report_the_tightest_scope_of_each_dimension(admitter):
    team = limit(rpm=100, tpm=10_000)
    key = limit(key="gw:rl:key:7", label="key 'ci-bot'", rpm=3, tpm=50_000)
    admitted = await admitter.admit(request([team, key], tokens=1000), seed=Seeder())
    assert admitted.headers["x-ratelimit-limit-requests"] == "3"
    assert admitted.headers["x-ratelimit-remaining-requests"] == "2"
    assert admitted.headers["x-ratelimit-limit-tokens"] == "10000"
    assert admitted.headers["x-ratelimit-remaining-tokens"] == "9000"
    # Reset: the time until the scope is back to its full allowance (1000 tokens at 10000/min).
    assert admitted.headers["x-ratelimit-reset-tokens"] in ("6s", "5.999s")


async def test_gcra_rolls_over_one_request_per_interval_without_a_second_burst(admitter):
    # 60 per minute: a burst of 60, then one a second; no window boundary refills it all.
    req = request([limit(rpm=60)])
    assert await _admitted(admitter, req, 65) == 60
    await asyncio.sleep(1.05)
    assert await _admitted(admitter, req, 3) == 1
    await asyncio.sleep(1.05)
    assert await _admitted(admitter, req, 3) == 1


# --- Tokens per minute --------------------------------------------------------------------------


async def test_tpm_reserves_the_estimate_and_refuses_what_does_not_fit(admitter):
    req = request([limit(tpm=1000)], tokens=400)
    assert await _admitted(admitter, req, 3) == 2
    with pytest.raises(AdmissionRefused) as refused:
        await admitter.admit(req, seed=Seeder())
    assert refused.value.kind == "tokens"
    assert refused.value.message == "team 'search' allows 1000 tokens per minute"
    assert refused.value.retry_after_s >= 1
    # A smaller request still fits in what is left (200 tokens).
    assert await _admitted(admitter, request([limit(tpm=1000)], tokens=200), 1) == 1


async def test_a_request_whose_estimate_alone_exceeds_the_tpm_is_refused_without_retry(admitter):
    with pytest.raises(AdmissionRefused) as refused:
        await admitter.admit(request([limit(tpm=1000)], tokens=1001), seed=Seeder())
    assert refused.value.kind == "tokens"
    assert "1000 tokens per minute" in refused.value.message
    assert "alone is estimated at 1001 tokens" in refused.value.message
    assert refused.value.retry_after_s == 0
    # Nothing was reserved: the full allowance is still there.
    assert await _admitted(admitter, request([limit(tpm=1000)], tokens=1000), 1) == 1


async def test_all_or_nothing_a_refusing_scope_leaves_the_others_untouched(admitter):
    team = limit(rpm=10)
    key = limit(key="gw:rl:key:7", label="key 'ci-bot'", rpm=1)
    await admitter.admit(request([key]), seed=Seeder())
    with pytest.raises(AdmissionRefused) as refused:
        await admitter.admit(request([team, key]), seed=Seeder())
    assert refused.value.message == "key 'ci-bot' allows 1 requests per minute"
    # The team scope kept its whole allowance: the refused request took nothing from it.
    assert await _admitted(admitter, request([team]), 11) == 10


async def test_settle_refunds_an_over_estimate_and_charges_an_under_estimate(admitter):
    scope = limit(tpm=1000)
    admitted = await admitter.admit(request([scope], tokens=600), seed=Seeder())
    assert admitted.reserved_tokens == 600
    # Actual use 100: 500 come back, so 900 are free again.
    await admitter.settle(admitted, tokens=100, cost_micros=0, usage_event=b"{}")
    again = await admitter.admit(request([scope], tokens=800), seed=Seeder())
    assert int(again.headers["x-ratelimit-remaining-tokens"]) in (99, 100)
    # Used 900 instead of 800: the extra 100 is charged (and counted); nothing is left.
    requests, tokens = underestimates()
    await admitter.settle(again, tokens=900, cost_micros=0, usage_event=b"{}")
    assert underestimates() == (requests + 1, tokens + 100)
    with pytest.raises(AdmissionRefused):
        await admitter.admit(request([scope], tokens=10), seed=Seeder())


async def test_a_refund_never_banks_allowance_beyond_the_full_minute(admitter):
    scope = limit(tpm=60_000)
    admitted = await admitter.admit(request([scope], tokens=30_000), seed=Seeder())
    await asyncio.sleep(0.3)
    # Refunding all 30000 tokens 0.3 s later would put the window 0.3 s in the past (300
    # tokens banked); it stops at now, so a full minute's worth is all there is.
    await admitter.settle(admitted, tokens=0, cost_micros=0, usage_event=b"{}")
    assert await _admitted(admitter, request([scope], tokens=60_000), 1) == 1
    assert await _admitted(admitter, request([scope], tokens=100), 1) == 0


# --- Settle and the usage event -----------------------------------------------------------------


async def test_settle_appends_the_usage_event_in_the_same_call(store, admitter, events):
    admitted = await admitter.admit(request([limit(tpm=1000)], tokens=10), seed=Seeder())
    await admitter.settle(admitted, tokens=20, cost_micros=5, usage_event=b'{"e": 1}')
    if isinstance(store, RedisStateStore):
        [(_, fields)] = store.sync_client.xrange(settings.GATEWAY_USAGE_STREAM)
        assert fields == {b"e": b'{"e": 1}'}
    else:
        assert events == [b'{"e": 1}']


async def test_redis_settle_reloads_a_forgotten_script_and_appends_the_event_once():
    store = RedisStateStore(settings.REDIS_URL)
    admitter = Admitter(store)
    scope = limit(tpm=1000)
    first = await admitter.admit(request([scope], tokens=100), seed=Seeder())
    await admitter.settle(first, tokens=100, cost_micros=0, usage_event=b"first")  # loaded
    admitted = await admitter.admit(request([scope], tokens=500), seed=Seeder())
    store.sync_client.script_flush()  # as after a Redis restart
    await admitter.settle(admitted, tokens=0, cost_micros=0, usage_event=b"once")
    events = store.sync_client.xrange(settings.GATEWAY_USAGE_STREAM)
    assert [fields[b"e"] for _, fields in events] == [b"first", b"once"]
    # The refund ran too: all but the first request's 100 tokens are free again.
    assert await _admitted(admitter, request([scope], tokens=900), 1) == 1


async def test_settle_on_an_unreachable_store_raises_state_unavailable(closed_redis_url):
    admitter = Admitter(RedisStateStore(closed_redis_url))
    req = request([limit(rpm=5)], budgets=[budget(5, hard=False)])
    admitted = await admitter.admit(req, seed=Seeder())
    assert admitted.local is True
    with pytest.raises(StateUnavailable):
        await admitter.settle(admitted, tokens=1, cost_micros=1, usage_event=b"{}")


def test_tat_keys_expire_once_the_scope_is_full_again():
    store = RedisStateStore(settings.REDIS_URL)
    store.sync_client.flushdb()
    asyncio.run(Admitter(store).admit(request([limit(rpm=60)]), seed=Seeder()))
    # One request at 60/min moves the TAT 1 s ahead: the key lives that long, no longer.
    assert 0 < store.sync_client.pttl("gw:rl:team:1:req") <= 1000
    time.sleep(1.05)
    assert store.sync_client.exists("gw:rl:team:1:req") == 0


def test_the_in_process_store_drops_expired_keys_nobody_reads_again(monkeypatch):
    # Per-process limiters (and the embedded mode) write a new bucket key every few minutes and a
    # window per end user; expired ones must not pile up for the life of the process.
    from infra.state import memory

    monkeypatch.setattr(memory, "_SWEEP_EVERY_S", 0.0)
    store = MemoryStateStore()
    asyncio.run(store.aset("old", b"1", 0))
    asyncio.run(store.aset("kept", b"1", 60))
    time.sleep(0.01)
    asyncio.run(store.aincrby("new", 1, 60))
    assert set(store._data) == {"kept", "new"}

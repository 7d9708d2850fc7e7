"""Budget reservations in admission, on Redis (Lua) and in process (the twin): all or nothing,
clamping, soft warnings, seeding of missing counters (and its race), settle, and lapse."""

import asyncio
import time

import pytest
from django.conf import settings

from policies.admission import AdmissionRefused, AdmissionUnavailable, Admitter
from policies.budget_keys import BUCKET_S, live_buckets, reservation_key, spent_key
from policies.periods import counter_ttl_s, period_of

from . import helpers_admission as fixtures
from .helpers_admission import Seeder, budget, limit, request

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

store, events, admitter = fixtures.store, fixtures.events, fixtures.admitter

DOLLAR = 1_000_000
TEAM = budget(5)
KEY = budget(1, level="key", scope_id=7, label="key 'ci-bot'")


async def _spent(store, scope, period) -> int | None:
    raw = await store.aget(spent_key(scope.key, period))
    return None if raw is None else int(raw)


async def _reserved(store, scope, period) -> int:
    buckets = live_buckets(time.time(), settings.GATEWAY_BUDGET_RESERVATION_TTL_S)
    values = await store.amget(*(reservation_key(scope.key, period, b) for b in buckets))
    return sum(int(v) for v in values if v is not None)


async def _try(admitter, req, seed=None):
    try:
        return await admitter.admit(req, seed=seed or Seeder())
    except AdmissionRefused as refused:
        return refused


async def test_fifty_concurrent_requests_against_a_budget_that_fits_five(store, admitter):
    req = request(budgets=[TEAM], prompt_micros=DOLLAR)
    results = await asyncio.gather(*(_try(admitter, req) for _ in range(50)))
    admitted = [r for r in results if not isinstance(r, AdmissionRefused)]
    refused = [r for r in results if isinstance(r, AdmissionRefused)]
    assert len(admitted) == 5
    period = admitted[0].period
    assert {r.message for r in refused} == {f"team 'search' budget of $5.00 for {period} is spent"}
    assert {(r.kind, r.code) for r in refused} == {("budget", "budget_exceeded")}
    assert all(r.retry_after_s >= 1 for r in refused)
    assert await _reserved(store, TEAM, period) == 5 * DOLLAR
    # Each settles to its actual cost: reservations back to zero, spend their sum.
    for one in admitted:
        await admitter.settle(one, tokens=0, cost_micros=600_000, usage_event=b"{}")
    assert await _reserved(store, TEAM, period) == 0
    assert await _spent(store, TEAM, period) == 3 * DOLLAR
    # Settled below the worst case: $2 left, two more fit.
    again = await asyncio.gather(*(_try(admitter, req) for _ in range(5)))
    assert sum(not isinstance(r, AdmissionRefused) for r in again) == 2


async def test_every_budget_is_reserved_at_once_or_none_is(store, admitter):
    req = request([limit(rpm=100)], budgets=[TEAM, KEY], prompt_micros=DOLLAR)
    first = await admitter.admit(req, seed=Seeder())
    refused = await _try(admitter, req)
    assert isinstance(refused, AdmissionRefused)
    assert refused.message == f"key 'ci-bot' budget of $1.00 for {first.period} is spent"
    # The team holds only the admitted request's reservation; the rate limit counted only it.
    assert await _reserved(store, TEAM, first.period) == DOLLAR
    second = await admitter.admit(request([limit(rpm=100)]), seed=Seeder())
    assert second.headers["x-ratelimit-remaining-requests"] == "98"


async def test_refusal_names_what_is_left_when_the_budget_is_not_yet_spent(admitter):
    req = request(budgets=[TEAM], prompt_micros=DOLLAR)
    refused = await _try(admitter, req, Seeder({1: 4_500_000}))
    assert isinstance(refused, AdmissionRefused)
    period = period_of(time.time(), "UTC")
    assert refused.message == (
        f"team 'search' budget of $5.00 for {period} has $0.50 left, less than this request's "
        "worst case of $1.00"
    )


async def test_worst_case_counts_output_tokens_at_the_output_price(admitter):
    # $10 per 1M output tokens: 4096 tokens cost 40960 micro-dollars, rounded up.
    req = request(budgets=[TEAM], prompt_micros=1234, output_tokens=4096, output_price=10 * DOLLAR)
    admitted = await admitter.admit(req, seed=Seeder())
    assert admitted.reserved_micros == 1234 + 40960
    assert admitted.granted_output_tokens == 4096


# --- Clamping -----------------------------------------------------------------------------------


async def test_a_clamping_budget_grants_the_output_tokens_that_still_fit(store, admitter):
    clamping = budget(1, clamp=True)
    # $100 per 1M output tokens = 100 micro-dollars each; $0.50 left after $0.10 of prompt fits
    # 4000 of the 4096 asked.
    req = request(
        [limit(tpm=100_000)],
        budgets=[clamping],
        tokens=5000,
        prompt_micros=100_000,
        output_tokens=4096,
        output_price=100 * DOLLAR,
    )
    admitted = await admitter.admit(req, seed=Seeder({1: 500_000}))
    assert admitted.granted_output_tokens == 4000
    assert admitted.reserved_micros == 500_000
    assert admitted.reserved_tokens == 5000 - 96
    assert await _reserved(store, clamping, admitted.period) == 500_000
    # Nothing is left: not even the minimum clamped output fits, so it is refused.
    refused = await _try(admitter, req)
    assert isinstance(refused, AdmissionRefused)
    assert refused.kind == "budget"


async def test_clamping_below_the_minimum_output_refuses_instead(admitter, settings):
    settings.GATEWAY_MIN_CLAMPED_OUTPUT_TOKENS = 16
    req = request(budgets=[budget(1, clamp=True)], output_tokens=4096, output_price=100 * DOLLAR)
    # 1500 micro-dollars left: 15 output tokens, one short of the minimum.
    refused = await _try(admitter, req, Seeder({1: DOLLAR - 1500}))
    assert isinstance(refused, AdmissionRefused)
    assert "has $0.0015 left" in refused.message


async def test_a_non_clamping_hard_budget_still_refuses_what_the_clamped_request_exceeds(admitter):
    req = request(
        budgets=[budget(1, clamp=True), KEY],
        output_tokens=4096,
        output_price=100 * DOLLAR,
    )
    # The team clamps to 2000 tokens ($0.20); the key has only $0.10 left and does not clamp.
    refused = await _try(admitter, req, Seeder({1: 800_000, 7: 900_000}))
    assert isinstance(refused, AdmissionRefused)
    assert refused.message.startswith("key 'ci-bot' budget of $1.00")


# --- Soft budgets -------------------------------------------------------------------------------


async def test_a_soft_budget_admits_and_warns_once_over(store, admitter):
    soft = budget(1, hard=False)
    req = request(budgets=[soft], prompt_micros=600_000)
    first = await admitter.admit(req, seed=Seeder())
    assert first.warnings == ()
    second = await admitter.admit(req, seed=Seeder())
    assert second.warnings == (
        f"team 'search' budget of $1.00 for {second.period} has $0.40 left, less than this "
        "request's worst case of $0.60",
    )
    third = await admitter.admit(req, seed=Seeder())
    assert third.warnings == (f"team 'search' budget of $1.00 for {third.period} is spent",)
    assert await _reserved(store, soft, third.period) == 1_800_000


# --- Seeding missing counters -------------------------------------------------------------------


async def test_a_missing_counter_is_seeded_once_from_the_callback(store, admitter):
    seeder = Seeder({1: 4 * DOLLAR})
    req = request(budgets=[TEAM], prompt_micros=DOLLAR, timezone="Pacific/Auckland")
    admitted = await admitter.admit(req, seed=seeder)
    assert admitted.period == period_of(time.time(), "Pacific/Auckland")
    assert seeder.calls == [((TEAM,), admitted.period, "Pacific/Auckland")]
    assert await _spent(store, TEAM, admitted.period) == 4 * DOLLAR
    # The seeded spend counts: the next $1 does not fit, and the callback is not asked again.
    assert isinstance(await _try(admitter, req, seeder), AdmissionRefused)
    assert len(seeder.calls) == 1
    if hasattr(store, "sync_client"):
        ttl = store.sync_client.ttl(spent_key(TEAM.key, admitted.period))
        assert abs(ttl - counter_ttl_s(time.time(), "Pacific/Auckland")) <= 5


async def test_two_seeders_racing_the_first_value_stays(store, admitter):
    both_asked, first_done = asyncio.Event(), asyncio.Event()
    asked = []

    async def slow_seed(value, wait_for):
        async def seed(scopes, period, tz):
            asked.append(value)
            if len(asked) == 2:
                both_asked.set()
            await wait_for.wait()
            return [value]

        return seed

    async def first():
        try:
            return await admitter.admit(req, seed=await slow_seed(100, both_asked))
        finally:
            first_done.set()

    req = request(budgets=[TEAM], prompt_micros=DOLLAR)
    one, _ = await asyncio.gather(
        first(), admitter.admit(req, seed=await slow_seed(DOLLAR * 2, first_done))
    )
    assert sorted(asked) == [100, 2 * DOLLAR]  # both found the counter missing
    assert await _spent(store, TEAM, one.period) == 100  # the second did not overwrite it
    assert await _reserved(store, TEAM, one.period) == 2 * DOLLAR


async def test_a_counter_set_meanwhile_by_another_process_is_not_overwritten(store, admitter):
    period = period_of(time.time(), "UTC")

    async def seed(scopes, period_, tz):
        await store.aset(spent_key(TEAM.key, period), b"4500000", 3600)  # the other process
        return [0]

    refused = await _try(admitter, request(budgets=[TEAM], prompt_micros=DOLLAR), seed)
    assert isinstance(refused, AdmissionRefused)
    assert await _spent(store, TEAM, period) == 4_500_000


async def test_an_unreadable_spend_fails_hard_budgets_closed(store, admitter):
    req = request(budgets=[TEAM], prompt_micros=DOLLAR)
    with pytest.raises(AdmissionUnavailable, match="team 'search' budget cannot be checked"):
        await admitter.admit(req, seed=Seeder(fail=True))
    assert await _reserved(store, TEAM, period_of(time.time(), "UTC")) == 0


async def test_an_unreadable_spend_lets_soft_budgets_and_fail_open_through(store, settings):
    admitter = Admitter(store)
    soft = budget(5, hard=False)
    admitted = await admitter.admit(request(budgets=[soft]), seed=Seeder(fail=True))
    assert admitted.warnings == ()
    assert await _spent(store, soft, admitted.period) is None  # unknown: never guessed as 0
    settings.GATEWAY_BUDGET_FAIL_OPEN = True
    admitted = await admitter.admit(request(budgets=[TEAM]), seed=Seeder(fail=True))
    assert admitted.local is False
    assert await _spent(store, TEAM, admitted.period) is None


# --- Settle and lapse ---------------------------------------------------------------------------


async def test_settle_never_creates_a_counter_or_a_bucket_that_is_gone(store, admitter):
    admitted = await admitter.admit(request(budgets=[TEAM], prompt_micros=DOLLAR), seed=Seeder())
    spent = spent_key(TEAM.key, admitted.period)
    bucket = reservation_key(TEAM.key, admitted.period, admitted.bucket)
    await store.adelete(spent, bucket)  # Redis flushed, or the reservation lapsed
    await admitter.settle(admitted, tokens=0, cost_micros=700_000, usage_event=b"{}")
    assert await store.amget(spent, bucket) == [None, None]


async def test_a_reservation_that_is_never_settled_lapses_after_its_ttl(store, events, settings):
    settings.GATEWAY_BUDGET_RESERVATION_TTL_S = 1
    clock = [time.time()]
    admitter = Admitter(store, clock=lambda: clock[0])
    req = request(budgets=[budget(1)], prompt_micros=DOLLAR)
    admitted = await admitter.admit(req, seed=Seeder())  # then its process dies
    assert isinstance(await _try(admitter, req), AdmissionRefused)
    # The bucket expires on its own (TTL + one bucket), and stops counting once out of the live
    # buckets: two buckets later the budget is free again, with no sweeper.
    if hasattr(store, "sync_client"):
        bucket = reservation_key(TEAM.key, admitted.period, admitted.bucket)
        assert BUCKET_S - 5 <= store.sync_client.ttl(bucket) <= BUCKET_S + 1
    clock[0] += 2 * BUCKET_S + 1
    assert not isinstance(await _try(admitter, req), AdmissionRefused)

"""Budgets end to end: reserved before the call, settled after it, never overspent under a race.

50 requests at once against a budget that fits 5: each reserves its worst case (prompt plus
max_tokens at the priciest candidate) in the same Redis round trip as the rate limits, so at
most 5 are admitted however the requests interleave. Afterwards nothing stays reserved and the
spend counter equals the usage log.
"""

import asyncio
from decimal import Decimal

import openai
import pytest
from django.conf import settings

from infra.state import get_state

from .budget_support import (
    ACTUAL_MICROS,
    OUTPUT_TOKENS,
    budget_counters,
    micros,
    set_team_policy,
)
from .support import MESSAGES, assert_openai_error, wait_for_usage_records

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

RACE = 50
FITS = 5


def _budget_for(requests: int) -> Decimal:
    # Room for `requests` reservations and a little more, never for one more request.
    return Decimal(requests * ACTUAL_MICROS + ACTUAL_MICROS // 2) / 1_000_000


async def _race(gateway, count: int) -> list:
    async with gateway.async_client() as client:

        async def one():
            try:
                return await client.chat.completions.create(
                    model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
                )
            except openai.APIStatusError as exc:
                return exc

        return await asyncio.gather(*(one() for _ in range(count)))


def test_fifty_concurrent_requests_against_a_budget_that_fits_five(gateway, exact_usage):
    exact_usage.delay_s = 0.2  # all 50 are in flight together
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(FITS))

    results = asyncio.run(_race(gateway, RACE))

    served = [r for r in results if not isinstance(r, openai.APIStatusError)]
    refused = [r for r in results if isinstance(r, openai.APIStatusError)]
    assert len(served) == FITS
    assert {(r.status_code, r.body["code"]) for r in refused} == {(429, "budget_exceeded")}
    assert refused[0].response.headers["x-should-retry"] == "false"
    assert int(refused[0].response.headers["retry-after"]) > 0
    assert f"team '{gateway.team.slug}' budget of $" in refused[0].body["message"]

    records = wait_for_usage_records(RACE)
    spent, reserved = budget_counters("team", gateway.team.pk)
    assert reserved == 0
    assert spent == micros(records) == FITS * ACTUAL_MICROS
    assert sum(1 for r in records if r.status_code == 200) == FITS


def test_budget_spent_refuses_the_next_request_and_names_the_budget(gateway, exact_usage):
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(1))
    with gateway.client() as client:
        client.chat.completions.create(
            model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
        )
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "chat-fast", "messages": MESSAGES, "max_tokens": OUTPUT_TOKENS},
            headers=gateway.auth(),
        )
    body = assert_openai_error(response, 429, "budget_exceeded")
    assert body["message"].startswith(f"team '{gateway.team.slug}' budget of $")


def test_soft_budget_allows_and_warns_in_a_header(gateway, exact_usage):
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(1), budget_mode="soft")
    with gateway.client() as client:
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(
                model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
            )
    assert raw.http_response.status_code == 200
    assert "budget" in raw.headers["x-gateway-budget-warning"]


def test_little_budget_left_clamps_max_tokens_when_the_policy_says_so(gateway, exact_usage):
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(1), budget_clamp=True)
    with gateway.client() as client:
        client.chat.completions.create(
            model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
        )
        exact_usage.requests.clear()
        client.chat.completions.create(
            model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
        )
    [sent] = exact_usage.received("/v1/chat/completions")
    # Half a request's worth was left: the second asked for 1000 and was sent with fewer.
    assert 16 <= sent.body["max_tokens"] < OUTPUT_TOKENS


def test_upstream_failure_releases_the_reservation(gateway, exact_usage):
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(FITS))
    exact_usage.fail(503)
    with gateway.client() as client, pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
        )
    [record] = wait_for_usage_records(1)
    assert record.status_code == 503
    spent, reserved = budget_counters("team", gateway.team.pk)
    assert (spent, reserved) == (0, 0)


def test_client_disconnect_mid_stream_releases_and_charges_what_was_used(gateway, exact_usage):
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(FITS))
    exact_usage.chunk_delay_s = 0.5
    body = {
        "model": "chat-fast",
        "messages": MESSAGES,
        "max_tokens": OUTPUT_TOKENS,
        "stream": True,
    }
    with (
        gateway.http() as http,
        http.stream("POST", "/v1/chat/completions", json=body, headers=gateway.auth()) as resp,
    ):
        assert resp.status_code == 200
        next(resp.iter_raw())
    [record] = wait_for_usage_records(1)
    assert record.status_code == 499
    spent, reserved = budget_counters("team", gateway.team.pk)
    assert reserved == 0
    assert spent == micros([record])


def test_client_giving_up_before_the_answer_releases_the_reservation(gateway, exact_usage):
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(FITS))
    exact_usage.delay_s = 2.0
    with gateway.client(timeout=0.5) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
        )
    [record] = wait_for_usage_records(1)
    assert (record.status_code, record.error_type) == (499, "client_disconnected")
    spent, reserved = budget_counters("team", gateway.team.pk)
    assert (spent, reserved) == (0, 0)


def test_redis_counters_are_rebuilt_from_postgres_after_a_flush(gateway, exact_usage):
    set_team_policy(gateway.team, monthly_budget_usd=_budget_for(2))
    with gateway.client() as client:
        client.chat.completions.create(
            model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
        )
        records = wait_for_usage_records(1)
        # Redis loses the budget counters (as in a restart without persistence; the usage
        # stream is left alone, for the test's own accounting of events).
        redis = get_state().sync_client
        redis.delete(*redis.keys("gw:bud:*"))
        client.chat.completions.create(
            model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
        )
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="chat-fast", messages=MESSAGES, max_tokens=OUTPUT_TOKENS
            )
    assert caught.value.body["code"] == "budget_exceeded"
    spent, _ = budget_counters("team", gateway.team.pk)
    # The first request's spend came back from the usage log, the second's was settled on it.
    assert spent == micros(records) + ACTUAL_MICROS
    records = wait_for_usage_records(3)
    assert sorted(r.status_code for r in records) == [200, 200, 429]

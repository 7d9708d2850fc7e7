"""Retries of the same deployment (gateway/proxy/retries.py): a passing fault is retried with
backoff, a 429 is not retried on the deployment that sent it, and in a full outage the retry
budget caps how much more traffic the provider sees."""

import pytest

from .support import MESSAGES, wait_for_usage_records

CHAT = {"model": "chat-fast", "messages": MESSAGES}


@pytest.fixture
def quick_retries(settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 1
    settings.GATEWAY_RETRY_BACKOFF_BASE_S = 0.01
    settings.GATEWAY_RETRY_BACKOFF_MAX_S = 0.02


def _post(gateway, body=CHAT):
    with gateway.http() as http:
        return http.post("/v1/chat/completions", json=body, headers=gateway.auth())


def test_a_passing_server_error_is_retried_on_the_same_deployment(gateway, upstream, quick_retries):
    upstream.fail(500, times=1)
    response = _post(gateway)
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-attempts"] == "2"
    assert response.headers["x-gateway-fallbacks"] == "fake-primary/fake-chat-fast: upstream_error"
    sent = [r.body["model"] for r in upstream.received("/v1/chat/completions")]
    assert sent == ["fake-chat-fast", "fake-chat-fast"]
    [record] = wait_for_usage_records(1)
    assert (record.status_code, record.attempts) == (200, 2)


def test_a_429_is_not_retried_on_the_deployment_that_sent_it(gateway, upstream, quick_retries):
    upstream.fail(429, headers={"retry-after": "30"}, times=1)
    response = _post(gateway)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert len(upstream.received("/v1/chat/completions")) == 1


def test_the_retry_budget_caps_retries_in_a_full_outage(gateway, upstream, settings):
    # The budget alone: breakers that never open (they would cut the calls sooner still, see
    # test_breakers_end_a_full_outage_sooner_still).
    settings.GATEWAY_BREAKER_CONSECUTIVE_FAILURES = 10**6
    settings.GATEWAY_BREAKER_ERROR_RATE_PCT = 101
    settings.GATEWAY_UPSTREAM_RETRIES = 3
    settings.GATEWAY_RETRY_BACKOFF_BASE_S = 0.001
    settings.GATEWAY_RETRY_BACKOFF_MAX_S = 0.002
    settings.GATEWAY_RETRY_BUDGET_RATIO = 0.1
    settings.GATEWAY_RETRY_MIN_PER_S = 2
    upstream.fail(500)
    requests = 60
    statuses = [_post(gateway).status_code for _ in range(requests)]
    assert set(statuses) == {502}
    calls = len(upstream.received("/v1/chat/completions"))
    # Without a budget: 4 calls per request (240). With it: one each, plus 10% of them, plus
    # the 2-a-second floor over the few seconds this takes.
    assert requests < calls <= requests * 1.1 + 2 * 10


def test_breakers_end_a_full_outage_sooner_still(gateway, upstream, settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 3
    settings.GATEWAY_HEALTH_CACHE_S = 0
    upstream.fail(500)
    statuses = [_post(gateway).status_code for _ in range(30)]
    # The breaker opens after a few failures; then requests are answered 503 without a call.
    assert statuses[0] == 502 and statuses[-1] == 503
    assert len(upstream.received("/v1/chat/completions")) < 15

"""Deployment health on live traffic: the breaker opens, skips, probes and recovers; a 429's
Retry-After cools a deployment; a client's own mistakes and disconnects never count."""

import time

import httpx
import pytest
from django.conf import settings

from routing import health

from .health_support import CHAT, chat_requests, state_of, wait_state

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


def post(gw, model: str, timeout: float = 15, **extra) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": model, **CHAT, **extra},
        headers=gw.auth(),
        timeout=timeout,
    )


def test_breaker_opens_skips_the_deployment_then_one_probe_closes_it(pair, flaky, upstream):
    flaky.fail(500)
    for _ in range(3):
        answer = post(pair, "chat-pair")
        assert answer.status_code == 200
        assert answer.headers["x-gateway-attempts"] == "2"  # fell back to the steady one
    assert wait_state("flaky-chat", health.OPEN).consecutive_failures == 3
    tried = chat_requests(flaky, "flaky-chat")

    skipped = post(pair, "chat-pair")
    assert skipped.status_code == 200
    assert skipped.headers["x-gateway-attempts"] == "1"
    assert skipped.headers["x-gateway-deployment"] == "steady/steady-chat"
    assert chat_requests(flaky, "flaky-chat") == tried  # not even tried

    flaky.reset()  # the provider is back
    wait_state("flaky-chat", health.HALF_OPEN)
    probe = post(pair, "chat-pair")
    assert probe.headers["x-gateway-deployment"] == "flaky/flaky-chat"
    closed = wait_state("flaky-chat", health.CLOSED)
    assert closed.consecutive_failures == 0
    assert closed.latency_ms is not None
    assert post(pair, "chat-pair").headers["x-gateway-deployment"] == "flaky/flaky-chat"


def test_a_failed_probe_reopens_the_breaker(pair, flaky):
    flaky.fail(502)
    for _ in range(3):
        post(pair, "chat-pair")
    wait_state("flaky-chat", health.OPEN)
    wait_state("flaky-chat", health.HALF_OPEN)
    before = chat_requests(flaky, "flaky-chat")
    assert post(pair, "chat-pair").status_code == 200  # the probe failed, the fallback did not
    assert chat_requests(flaky, "flaky-chat") == before + 1
    assert wait_state("flaky-chat", health.OPEN).retry_in_s > 0.5  # doubled: up to 1 s


def test_a_429_cools_the_deployment_for_its_retry_after(pair, flaky):
    flaky.fail(429, headers={"retry-after": "1"}, times=1)
    limited = post(pair, "chat-pair")
    assert limited.status_code == 200
    assert limited.headers["x-gateway-attempts"] == "2"
    cooling = wait_state("flaky-chat", health.COOLING)
    assert 0 < cooling.retry_in_s <= 1
    assert cooling.consecutive_failures == 0  # a 429 is no breaker failure

    during = post(pair, "chat-pair")
    assert during.headers["x-gateway-deployment"] == "steady/steady-chat"
    assert chat_requests(flaky, "flaky-chat") == 1

    wait_state("flaky-chat", health.CLOSED)
    assert post(pair, "chat-pair").headers["x-gateway-deployment"] == "flaky/flaky-chat"


def test_a_cooling_single_deployment_is_answered_429_without_a_call(pair, flaky):
    flaky.fail(429, headers={"retry-after": "2"}, times=1)
    assert post(pair, "chat-flaky-only").status_code == 429
    wait_state("flaky-alone", health.COOLING)
    again = post(pair, "chat-flaky-only")
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "upstream_rate_limited"
    assert 1 <= int(again.headers["retry-after"]) <= 2
    assert chat_requests(flaky, "flaky-alone") == 1  # honoured: the provider was not asked


def test_client_mistakes_never_count(pair, flaky):
    flaky.fail(400, param="messages")
    for _ in range(5):
        assert post(pair, "chat-pair").status_code == 400
    time.sleep(0.2)  # reports are sent after the answer; none should change anything
    found = state_of("flaky-chat")
    assert found.state == health.CLOSED and found.consecutive_failures == 0


def test_client_disconnects_never_count(pair, flaky):
    flaky.stall()  # headers, then nothing: the client gives up first
    for _ in range(4):
        with pytest.raises(httpx.ReadTimeout):
            post(pair, "chat-pair", timeout=0.2)
    deadline = time.monotonic() + 5
    while flaky.disconnects < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    found = state_of("flaky-chat")
    assert found.state == health.CLOSED and found.consecutive_failures == 0


def test_every_deployment_down_is_answered_503_no_healthy_deployment(pair, flaky):
    flaky.fail(500)
    for _ in range(3):
        assert post(pair, "chat-flaky-only").status_code == 502
    wait_state("flaky-alone", health.OPEN)
    before = chat_requests(flaky, "flaky-alone")
    refused = post(pair, "chat-flaky-only")
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "no_healthy_deployment"
    assert "chat-flaky-only" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert chat_requests(flaky, "flaky-alone") == before


def test_a_stream_broken_after_its_first_byte_counts_once_and_is_not_retried(pair, flaky):
    flaky.drop_stream(after_chunks=1, times=1)
    answer = post(pair, "chat-pair", stream=True)
    assert answer.status_code == 200
    assert answer.headers["x-gateway-attempts"] == "1"
    assert "upstream_disconnected" in answer.text  # ended with an error event
    deadline = time.monotonic() + 5
    while state_of("flaky-chat").consecutive_failures != 1:
        assert time.monotonic() < deadline, "the broken stream was not reported"
        time.sleep(0.02)
    # A whole stream is a success, with its time to first token as the latency.
    assert post(pair, "chat-pair", stream=True).status_code == 200
    deadline = time.monotonic() + 5
    while state_of("flaky-chat").consecutive_failures != 0:
        assert time.monotonic() < deadline, "the good stream was not reported"
        time.sleep(0.02)
    assert state_of("flaky-chat").latency_ms is not None

"""While one of two providers fails mid-traffic (500s, then a hang, then refused connections), no
client request fails: the gateway falls back, and the breaker keeps most traffic off it."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings

from .health_support import CHAT, chat_requests

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

REQUESTS = 30


def _burst(gw) -> list[tuple[int, str]]:
    def one(_):
        response = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "chat-pair", **CHAT},
            headers=gw.auth(),
            timeout=15,
        )
        return response.status_code, response.headers.get("x-gateway-deployment", "")

    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(one, range(REQUESTS)))


def _wait_open_period(settings) -> None:
    # Each phase starts once a probe may pass again: every kind of failure reaches the provider.
    time.sleep(settings.GATEWAY_BREAKER_OPEN_S + 0.1)


def test_no_client_request_fails_while_a_provider_fails_mid_traffic(pair, flaky, breaker):
    healthy = _burst(pair)
    assert {status for status, _ in healthy} == {200}
    assert all(used == "flaky/flaky-chat" for _, used in healthy)  # the cheaper one

    phases = {}
    flaky.reset()  # forget the healthy burst's requests: count each phase's own
    flaky.fail(500)
    phases["500s"] = (_burst(pair), chat_requests(flaky, "flaky-chat"))

    _wait_open_period(breaker)
    flaky.reset()
    flaky.hang()
    phases["hang"] = (_burst(pair), chat_requests(flaky, "flaky-chat"))

    _wait_open_period(breaker)
    flaky.stop()  # connections refused from now on
    phases["refused"] = (_burst(pair), None)

    for name, (results, reached) in phases.items():
        assert [status for status, _ in results] == [200] * REQUESTS, name
        if reached is not None:
            # The failing provider was tried (the phase tested something), but the breaker
            # kept most of the burst off it.
            assert 1 <= reached < REQUESTS, (name, reached)
    assert any(used == "steady/steady-chat" for _, used in phases["refused"][0])

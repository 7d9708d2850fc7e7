"""A burst of concurrent requests larger than the Redis pool waits for a connection instead of
failing: with GATEWAY_REDIS_MAX_CONNECTIONS=2, 250 requests at once (each makes several Redis
calls: key lookup, admission, settlement) are all answered 200, where redis-py's default
pool raised "Too many connections" and the gateway answered 503 dependency_unavailable."""

import asyncio

import httpx
import pytest
from django.conf import settings

from .support import MESSAGES

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

POOL = 2
BURST = 250


@pytest.fixture
def web(web_process):
    return web_process(GATEWAY_REDIS_MAX_CONNECTIONS=str(POOL))


async def _burst(url: str, headers: dict) -> list[int]:
    body = {"model": "chat-fast", "messages": MESSAGES}
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(timeout=20, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post(f"{url}/v1/chat/completions", headers=headers, json=body)
              for _ in range(BURST))
        )  # fmt: skip
    return [r.status_code for r in responses]


def test_a_burst_larger_than_the_pool_waits_for_connections(web, gateway, upstream):
    upstream.delay_s = 0.05  # the requests overlap
    statuses = asyncio.run(_burst(web.url, gateway.auth()))
    assert statuses == [200] * BURST, {s: statuses.count(s) for s in set(statuses)}
    assert len(upstream.received("/v1/chat/completions")) == BURST
    clients = httpx.get(f"{web.url}/readyz", timeout=10)
    assert clients.status_code == 200

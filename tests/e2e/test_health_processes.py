"""Two web processes (uvicorn subprocesses, as in production) share each deployment's breaker
through Redis: failures seen by one open it for both, and a probe through the other closes it."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from routing import health
from tests.helpers_net import WebProcess
from tests.helpers_proc import subprocess_database_url

from .health_support import CHAT, chat_requests, wait_state

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    logs = tmp_path_factory.mktemp("health-processes")
    env = {
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "WEB_CONCURRENCY": "1",
        "GATEWAY_ROUTING_CACHE_TTL_S": "0.5",
        "GATEWAY_HEALTH_CACHE_S": "0",
        "GATEWAY_BREAKER_CONSECUTIVE_FAILURES": "3",
        "GATEWAY_BREAKER_MIN_OUTCOMES": "100",
        "GATEWAY_BREAKER_OPEN_S": "1",
        # One attempt per deployment, so the test counts outcomes exactly (test_retries.py).
        "GATEWAY_UPSTREAM_RETRIES": "0",
    }
    processes = [WebProcess(logs, **env) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(WebProcess.start, processes))
    yield processes
    for process in processes:
        process.stop()


def _chat(process, key: str):
    answer = process.post("/v1/chat/completions", key, {"model": "chat-pair", **CHAT}, timeout=15)
    assert answer.status_code == 200, answer.text
    return answer.headers


def test_two_processes_see_the_same_breaker(web, pair, flaky):
    first, second = web
    flaky.fail(500)
    for _ in range(3):
        assert _chat(first, pair.key)["x-gateway-attempts"] == "2"
    wait_state("flaky-chat", health.OPEN)
    tried = chat_requests(flaky, "flaky-chat")

    # The other process skips it without trying: it reads the same state.
    skipped = _chat(second, pair.key)
    assert skipped["x-gateway-attempts"] == "1"
    assert skipped["x-gateway-deployment"] == "steady/steady-chat"
    assert chat_requests(flaky, "flaky-chat") == tried

    flaky.reset()
    wait_state("flaky-chat", health.HALF_OPEN)
    # The second process sends the probe; its success closes the breaker for the first too.
    assert _chat(second, pair.key)["x-gateway-deployment"] == "flaky/flaky-chat"
    wait_state("flaky-chat", health.CLOSED)
    assert _chat(first, pair.key)["x-gateway-deployment"] == "flaky/flaky-chat"

"""The active health check in a real Celery worker: it marks a dead deployment before a user
request reaches it, brings a deployment back when its probe succeeds, and keeps the history."""

import httpx
import pytest
from django.conf import settings

from routing import health
from routing.models import DeploymentHealth, HealthCheck
from routing.tasks import check_health
from tests.helpers_budgets import start_worker, stop_worker, wait_result

from .health_support import CHAT, chat_requests, deployment_id, state_of

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


@pytest.fixture
def worker(transactional_db, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(log)
    yield proc
    stop_worker(proc)
    print(log.read_text()[-5000:])  # for a failing test's report


def _chat(gw, model: str) -> httpx.Response:
    answer = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": model, **CHAT},
        headers=gw.auth(),
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    return answer


def test_the_check_marks_a_dead_deployment_before_a_user_request_reaches_it(pair, worker):
    assert not settings.CELERY_TASK_ALWAYS_EAGER  # the task really runs in the worker
    result = wait_result(check_health.delay())
    assert "dead/dead-chat" in result["down"]
    assert "steady/steady-chat-2" not in result["down"]
    assert state_of("dead-chat").state == health.OPEN

    # The cheaper, dead deployment is skipped: the first attempt goes to the live one.
    answer = _chat(pair, "chat-dead-first")
    assert answer.headers["x-gateway-attempts"] == "1"
    assert answer.headers["x-gateway-deployment"] == "steady/steady-chat-2"

    row = DeploymentHealth.objects.get(deployment_id=deployment_id("dead-chat"))
    assert row.state == health.OPEN
    assert row.consecutive_failures == 1
    assert row.last_check_at is not None and row.last_ok_at is None
    assert "upstream_unavailable" in row.last_error
    assert HealthCheck.objects.filter(deployment_id=row.deployment_id, ok=False).count() == 1


def test_a_deployment_comes_back_when_its_probe_succeeds(pair, worker, flaky):
    flaky.fail(503)  # every request to it, the probe of its models endpoint included
    down = wait_result(check_health.delay())["down"]
    assert "flaky/flaky-chat" in down
    assert _chat(pair, "chat-pair").headers["x-gateway-deployment"] == "steady/steady-chat"
    assert chat_requests(flaky, "flaky-chat") == 0  # never reached by a user request

    flaky.reset()
    assert "flaky/flaky-chat" not in wait_result(check_health.delay())["down"]
    assert state_of("flaky-chat").state == health.CLOSED
    assert _chat(pair, "chat-pair").headers["x-gateway-deployment"] == "flaky/flaky-chat"

    history = HealthCheck.objects.filter(deployment_id=deployment_id("flaky-chat"))
    assert [c.ok for c in history.order_by("at")] == [False, True]
    row = DeploymentHealth.objects.get(deployment_id=deployment_id("flaky-chat"))
    assert row.state == health.CLOSED and row.consecutive_failures == 0
    assert row.last_ok_at is not None and row.latency_ms is not None

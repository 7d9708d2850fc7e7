"""The production ingestion path end to end: events on the Redis stream, a real Celery worker
process consuming billing.tasks.ingest_usage from the `usage` queue, rows in Postgres."""

import pytest
from celery.backends.redis import RedisBackend
from celery.result import AsyncResult
from django.conf import settings

from billing.models import UsageRecord
from billing.tasks import ingest_usage
from gateway.celery import app
from tenants.models import ApiKey
from tenants.services import api_key_issue

from .factories import TeamFactory
from .helpers_proc import PYTHON, base_env, start, stop, subprocess_database_url
from .helpers_usage import redis, usage_event, xadd

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

# Generous: a worker's first start imports Django and connects to both services.
TASK_TIMEOUT_S = 90


@pytest.fixture
def worker(transactional_db, tmp_path):
    """A Celery worker on the test database and Redis, killed at teardown.

    The project configures no result backend (beat-run tasks need none); this worker stores
    results in Redis so the test can wait on the task's own result.
    """
    env = base_env(DATABASE_URL=subprocess_database_url(), REDIS_URL=settings.REDIS_URL)
    args = [
        PYTHON,
        "-m",
        "celery",
        "-A",
        "gateway",
        "--result-backend",
        settings.REDIS_URL,
        "worker",
        "-Q",
        "usage,default",
        "--pool",
        "solo",
        "--hostname",
        "unit-tests@%h",
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "INFO",
    ]
    log = tmp_path / "worker.log"
    proc = start(args, env=env, log_path=log)
    yield proc
    stop(proc)
    # Left for a failing test's report: what the worker said.
    print(log.read_text()[-5000:])


def _wait(result) -> int:
    """Wait for the worker to finish the task, reading its result from Redis."""
    backend = RedisBackend(app=app, url=settings.REDIS_URL)
    try:
        return AsyncResult(result.id, backend=backend, app=app).get(timeout=TASK_TIMEOUT_S)
    finally:
        backend.client.close()


def test_real_worker_ingests_streamed_usage(worker):
    assert not settings.CELERY_TASK_ALWAYS_EAGER  # the task really leaves this process
    team = TeamFactory(allowed_models=["*"])
    key = api_key_issue(team=team, name="worker").api_key
    events = [usage_event(key) for _ in range(5)]
    for event in events:
        xadd(event)

    assert _wait(ingest_usage.delay()) == 5

    assert worker.poll() is None
    rows = UsageRecord.objects.filter(api_key=key)
    assert set(rows.values_list("request_id", flat=True)) == {e.request_id for e in events}
    assert redis().xlen(settings.GATEWAY_USAGE_STREAM) == 0
    key = ApiKey.objects.get(pk=key.pk)
    assert key.last_used_at is not None


def test_real_worker_run_twice_does_not_double_count(worker):
    team = TeamFactory(allowed_models=["*"])
    key = api_key_issue(team=team, name="worker").api_key
    event = usage_event(key)
    xadd(event)
    assert _wait(ingest_usage.delay()) == 1
    # The same event delivered again (a web process retried its XADD): still one row.
    xadd(event)
    assert _wait(ingest_usage.delay()) == 1
    assert UsageRecord.objects.filter(request_id=event.request_id).count() == 1
    assert _wait(ingest_usage.delay()) == 0

"""The rollup and retention tasks in a real Celery worker process, as beat sends them."""

import random
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import DailyUsage, UsageContent, UsageRecord
from billing.tasks import run_retention, run_rollups
from gateway.celery import app

from .helpers_budgets import start_worker, stop_worker, wait_result
from .helpers_rollups import assert_rollups_match_detail, random_rows

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


@pytest.fixture
def worker(transactional_db, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(log, GATEWAY_CONTENT_RETENTION_DAYS="30")
    yield proc
    stop_worker(proc)
    print(log.read_text()[-5000:])  # for a failing test's report


def test_beat_schedules_both_tasks_on_the_default_queue():
    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    rollups, retention = schedule["billing.rollups.run"], schedule["billing.retention.run"]
    assert rollups["schedule"] == settings.GATEWAY_ROLLUP_INTERVAL_S
    assert retention["schedule"] == settings.GATEWAY_RETENTION_INTERVAL_S
    for task in ("billing.rollups.run", "billing.retention.run"):
        assert schedule[task]["options"]["queue"] == "default"
        # Sent without options (`.delay()`), the routes leave them on `default` as well.
        assert app.amqp.router.route({}, task)["queue"].name == "default"


def test_tasks_run_in_a_worker(worker):
    assert not settings.CELERY_TASK_ALWAYS_EAGER  # the tasks really leave this process
    day = (timezone.now() - timedelta(days=1)).date()
    random_rows(random.Random(7), day, 50)
    UsageContent.objects.create(
        request_id="old", created_at=timezone.now() - timedelta(days=31), mode="hashed"
    )

    written = wait_result(run_rollups.delay())

    assert written == DailyUsage.objects.count() > 0
    assert_rollups_match_detail()
    assert wait_result(run_rollups.delay()) == 0  # the next beat: nothing new

    deleted = wait_result(run_retention.delay())
    assert deleted == {"usage_records": 0, "usage_content": 1, "daily_usage": 0}
    assert UsageRecord.objects.count() == 50 and not UsageContent.objects.exists()

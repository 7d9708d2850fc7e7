"""Budget alerts end to end in a real Celery worker process: the beat task's check, the email
through a Django mail backend (files), the webhook to a real HTTP server on 127.0.0.1 that fails
first, retried with backoff by Celery."""

from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from billing.models import BudgetAlert
from billing.tasks import check_budgets

from .factories import MembershipFactory, TeamFactory, UserFactory
from .helpers_budgets import (
    TASK_TIMEOUT_S,
    WebhookReceiver,
    budget_policy,
    start_worker,
    stop_worker,
    usage,
    wait_result,
)
from .helpers_proc import wait_for

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

SECRET_PATH = "/services/T000/B000/worker-secret-token"


@pytest.fixture
def worker(transactional_db, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(
        log,
        EMAIL_URL=f"filemail:///{tmp_path / 'mail'}",
        # Small numbers: retries wait at most 1 s, then 2 s; three attempts in all.
        GATEWAY_ALERT_WEBHOOK_BACKOFF_S="1",
        GATEWAY_ALERT_WEBHOOK_RETRIES="2",
    )
    yield proc, log, tmp_path / "mail"
    stop_worker(proc)
    print(log.read_text()[-5000:])  # for a failing test's report


def _team_with_budget(url: str):
    team = TeamFactory(slug="search")
    MembershipFactory(team=team, role="lead", user=UserFactory(username="lead"))
    budget_policy(
        url,
        team=team,
        monthly_budget_usd=Decimal("10"),
        alert_thresholds=[50],
        alert_emails=["ops@example.com"],
    )
    usage(cost="6", when=timezone.now(), team=team)
    return team


def _finished(alert_id: int):
    alert = BudgetAlert.objects.get(pk=alert_id)
    done = {"sent", "failed"}
    return alert if alert.email_status in done and alert.webhook_status in done else None


def test_beat_task_sends_each_alert_once_with_webhook_retries(worker):
    proc, log, mail_dir = worker
    assert not settings.CELERY_TASK_ALWAYS_EAGER  # the tasks really leave this process
    with WebhookReceiver([503, 429], path=SECRET_PATH) as receiver:
        _team_with_budget(receiver.url)

        first = wait_result(check_budgets.delay())
        second = wait_result(check_budgets.delay())  # the next beat: same crossing

        assert len(first["alerts"]) == 1 and second["alerts"] == []
        assert first["counters_created"] == 1
        alert = wait_for(
            lambda: _finished(first["alerts"][0]), timeout=TASK_TIMEOUT_S, what="the alert"
        )
        assert receiver.calls == 3

    assert (alert.email_status, alert.webhook_status, alert.attempts) == ("sent", "sent", 3)
    assert [a["result"] for a in alert.attempt_log] == ["HTTP 503", "HTTP 429", "HTTP 200"]
    assert BudgetAlert.objects.count() == 1
    mails = list(mail_dir.iterdir())
    assert len(mails) == 1
    text = mails[0].read_text()
    assert "To: lead@example.com, ops@example.com" in text
    assert "team 'search' has spent $6.00 of its $10.00 budget" in text
    # The webhook URL is a secret: the worker's log of the retries does not show it.
    assert proc.poll() is None
    assert "Retry in" in log.read_text()
    assert "worker-secret-token" not in log.read_text()


def test_webhook_gives_up_after_its_retries(worker):
    _, log, _ = worker
    with WebhookReceiver([500, 502, 503, 504], path=SECRET_PATH) as receiver:
        _team_with_budget(receiver.url)
        result = wait_result(check_budgets.delay())
        alert = wait_for(
            lambda: _finished(result["alerts"][0]), timeout=TASK_TIMEOUT_S, what="the alert"
        )
        assert receiver.calls == 3  # the first call and two retries

    assert (alert.webhook_status, alert.attempts) == ("failed", 3)
    assert alert.last_error == "webhook: HTTP 503"
    assert alert.email_status == "sent"  # the email does not wait for, or repeat with, the hook
    assert "worker-secret-token" not in log.read_text()

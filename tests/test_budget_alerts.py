"""Budget alerts: once per threshold per period, to the policy's emails (plus the team's leads)
and its webhook, with a record of each attempt and never the webhook URL in it.

The budget check and the senders run in this process here; tests/test_budget_worker.py runs
them in a real Celery worker, retries included."""

import logging
from decimal import Decimal

import pytest
from django.conf import settings
from django.core import mail
from django.core.serializers import serialize

from billing.alerts import WebhookRetryable, alert_email_send, alert_webhook_send
from billing.budget_check import budget_check
from billing.models import BudgetAlert
from tenants.services import api_key_issue

from .factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from .helpers_budgets import WebhookReceiver, at, budget_policy, usage
from .helpers_proc import free_port

NOV = at("2026-11-20T12:00").timestamp()
DEC = at("2026-12-20T12:00").timestamp()
SECRET_PATH = "/services/T000/B000/very-secret-token"


@pytest.fixture
def receiver():
    with WebhookReceiver(path=SECRET_PATH) as server:
        yield server


@pytest.fixture
def search(db):
    org = OrganizationFactory(slug="acme", timezone="Europe/Paris")
    team = TeamFactory(slug="search", organization=org)
    lead = UserFactory(username="lead", email="lead@example.com")
    MembershipFactory(team=team, user=lead, role="lead")
    MembershipFactory(team=team, user=UserFactory(username="member"), role="member")
    return team


def _send_all(report) -> None:
    """What the Celery tasks do for each new alert, in this process."""
    for alert in report.alerts:
        alert_email_send(alert.pk)
        alert_webhook_send(alert.pk, final=True)


def test_each_threshold_fires_once_per_period(search, receiver):
    budget_policy(
        receiver.url,
        team=search,
        monthly_budget_usd=Decimal("10"),
        alert_thresholds=[50, 80],
        alert_emails=["ops@example.com"],
    )
    usage(cost="6", when=at("2026-11-05T10:00"), team=search)

    _send_all(budget_check(NOV))
    _send_all(budget_check(NOV))  # the next run sees the same crossing

    alert = BudgetAlert.objects.get()
    assert (alert.period, alert.threshold, alert.spent_usd) == ("2026-11", 50, Decimal(6))
    assert (alert.email_status, alert.webhook_status, alert.attempts) == ("sent", "sent", 1)
    assert len(mail.outbox) == 1
    # The policy's addresses plus the team's leads (not its other members).
    assert sorted(mail.outbox[0].to) == ["lead@example.com", "ops@example.com"]
    assert mail.outbox[0].subject == "[gateway] team 'search' at 50% of its budget for 2026-11"
    assert receiver.bodies == [
        {
            "text": "Budget alert: team 'search' has spent $6.00 of its $10.00 budget for "
            "2026-11 (60%, threshold 50%)."
        }
    ]

    usage(cost="2.5", when=at("2026-11-06T10:00"), team=search)  # 85%: the next threshold
    _send_all(budget_check(NOV))
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80]
    assert len(mail.outbox) == 2 and receiver.calls == 2


def test_a_new_period_fires_again(search, receiver):
    budget_policy(
        receiver.url, team=search, monthly_budget_usd=Decimal("10"), alert_thresholds=[50]
    )
    usage(cost="6", when=at("2026-11-05T10:00"), team=search)
    _send_all(budget_check(NOV))
    _send_all(budget_check(DEC))  # December: nothing spent yet
    assert BudgetAlert.objects.count() == 1

    usage(cost="5", when=at("2026-12-05T10:00"), team=search)
    _send_all(budget_check(DEC))
    _send_all(budget_check(DEC))

    assert list(BudgetAlert.objects.order_by("period").values_list("period", flat=True)) == [
        "2026-11",
        "2026-12",
    ]
    assert len(mail.outbox) == 2  # the lead, once per period
    assert receiver.calls == 2


def test_thresholds_crossed_together_send_only_the_highest(search, receiver):
    budget_policy(
        receiver.url,
        team=search,
        monthly_budget_usd=Decimal("10"),
        alert_thresholds=[50, 80, 100],
    )
    usage(cost="9", when=at("2026-11-05T10:00"), team=search)

    report = budget_check(NOV)
    _send_all(report)

    assert [a.threshold for a in report.alerts] == [80]
    statuses = {a.threshold: (a.email_status, a.webhook_status) for a in BudgetAlert.objects.all()}
    assert statuses == {50: ("superseded", "superseded"), 80: ("sent", "sent")}
    assert len(mail.outbox) == 1 and receiver.calls == 1
    assert "threshold 80%" in receiver.bodies[0]["text"]


def test_a_key_budget_goes_to_the_policy_addresses_only(search):
    key = api_key_issue(team=search, name="ci-bot").api_key
    budget_policy(
        api_key=key,
        monthly_budget_usd=Decimal("5"),
        alert_thresholds=[100],
        alert_emails=["ci@example.com"],
    )
    usage(cost="5", when=at("2026-11-05T10:00"), key=key)

    report = budget_check(NOV)
    _send_all(report)

    alert = BudgetAlert.objects.get()
    assert (alert.label, alert.recipients, alert.webhook_status) == (
        "key 'ci-bot'",
        ["ci@example.com"],
        "none",
    )
    assert [m.to for m in mail.outbox] == [["ci@example.com"]]


def test_a_task_delivered_twice_sends_once(search, receiver):
    budget_policy(
        receiver.url, team=search, monthly_budget_usd=Decimal("10"), alert_thresholds=[50]
    )
    usage(cost="6", when=at("2026-11-05T10:00"), team=search)
    (alert,) = budget_check(NOV).alerts

    assert alert_email_send(alert.pk) == "sent"
    assert alert_email_send(alert.pk) == "skipped"
    assert alert_webhook_send(alert.pk, final=False) == "sent"
    assert alert_webhook_send(alert.pk, final=False) == "skipped"
    assert len(mail.outbox) == 1 and receiver.calls == 1


# --- Failures ------------------------------------------------------------------------------------


def _one_alert(team, url: str, **policy) -> BudgetAlert:
    budget_policy(url, team=team, monthly_budget_usd=Decimal("10"), alert_thresholds=[50], **policy)
    usage(cost="6", when=at("2026-11-05T10:00"), team=team)
    (alert,) = budget_check(NOV).alerts
    return alert


def test_a_retryable_webhook_failure_is_recorded_and_raised_for_a_retry(search, caplog):
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver([503, 429], path=SECRET_PATH) as receiver:
        alert = _one_alert(search, receiver.url)
        for result in ("HTTP 503", "HTTP 429"):
            with pytest.raises(WebhookRetryable, match=result):
                alert_webhook_send(alert.pk, final=False)
            alert.refresh_from_db()
            assert (alert.webhook_status, alert.last_error) == ("retrying", f"webhook: {result}")
        assert alert_webhook_send(alert.pk, final=False) == "sent"

    alert.refresh_from_db()
    assert alert.attempts == 3 and alert.last_error == ""
    assert [a["result"] for a in alert.attempt_log] == ["HTTP 503", "HTTP 429", "HTTP 200"]
    # The URL is a secret: not in the row, not in the log.
    assert "very-secret-token" not in serialize("json", [alert])
    assert "very-secret-token" not in caplog.text


def test_the_final_attempt_and_a_client_error_fail_without_retrying(search):
    with WebhookReceiver([500, 404], path=SECRET_PATH) as receiver:
        alert = _one_alert(search, receiver.url)
        assert alert_webhook_send(alert.pk, final=True) == "failed"  # no retries left
        BudgetAlert.objects.filter(pk=alert.pk).update(webhook_status="pending")
        assert alert_webhook_send(alert.pk, final=False) == "failed"  # 404: retrying won't help
    alert.refresh_from_db()
    assert [a["result"] for a in alert.attempt_log] == ["HTTP 500", "HTTP 404"]
    assert alert.last_error == "webhook: HTTP 404"


def test_a_refused_connection_is_retryable(search):
    alert = _one_alert(search, f"http://127.0.0.1:{free_port()}{SECRET_PATH}")
    with pytest.raises(WebhookRetryable, match="ConnectError"):
        alert_webhook_send(alert.pk, final=False)
    alert.refresh_from_db()
    assert (alert.webhook_status, alert.attempts) == ("retrying", 1)
    assert "very-secret-token" not in alert.last_error


def test_a_plain_http_webhook_elsewhere_is_never_called(search):
    alert = _one_alert(search, "http://hooks.example.com/services/T/B/very-secret-token")
    assert alert_webhook_send(alert.pk, final=False) == "failed"
    alert.refresh_from_db()
    assert alert.attempts == 0
    assert "https" in alert.last_error and "very-secret-token" not in alert.last_error


def test_an_email_failure_is_recorded(search, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    alert = _one_alert(search, "")
    assert alert.webhook_status == "none"
    assert alert_email_send(alert.pk) == "failed"
    alert.refresh_from_db()
    assert alert.email_status == "failed"
    assert alert.last_error.startswith("email: ConnectionRefusedError")


def test_odd_thresholds_fire_once_and_bad_ones_are_skipped(search):
    budget_policy(
        team=search,
        monthly_budget_usd=Decimal("10"),
        alert_thresholds=[33.333, "abc", True, -5, 0, None],
        alert_emails=["ops@example.com"],
    )
    usage(cost="4", when=at("2026-11-05T10:00"), team=search)
    _send_all(budget_check(NOV))
    _send_all(budget_check(NOV))
    assert list(BudgetAlert.objects.values_list("threshold", flat=True)) == [Decimal("33.33")]
    assert len(mail.outbox) == 1


def test_beat_runs_the_check_on_the_default_queue_away_from_usage_ingestion():
    from gateway.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["check-budgets"]
    assert entry["schedule"] == settings.GATEWAY_BUDGET_CHECK_INTERVAL_S == 60.0
    app.loader.import_default_modules()
    for task in (
        "billing.budgets.check",
        "billing.budgets.send_email",
        "billing.budgets.send_webhook",
    ):
        assert task in app.tasks
        assert app.amqp.router.route({}, task)["queue"].name == "default"
    assert app.amqp.router.route({}, "billing.tasks.ingest_usage")["queue"].name == "usage"


def test_a_delivery_whose_task_was_lost_is_queued_again_by_the_next_check(search, settings):
    """A Redis restart empties Celery's queue: the alert row stays `pending`. The budget check
    (here with Celery eager, the senders run in this process) queues what is owed again, once
    the alert is older than ORPHAN_AFTER; a fresh pending alert is left to its own task."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.alerts import ORPHAN_AFTER
    from billing.tasks import check_budgets

    settings.CELERY_TASK_ALWAYS_EAGER = True
    budget_policy("", team=search, monthly_budget_usd=Decimal("10"), alert_thresholds=[50])
    usage(cost="6", when=timezone.now(), team=search)
    budget_check()  # the alert row is created; its task "lost": nothing was sent
    alert = BudgetAlert.objects.get()
    assert alert.email_status == "pending" and mail.outbox == []

    check_budgets()  # too young to be an orphan: its own task may still be on its way
    assert BudgetAlert.objects.get().email_status == "pending" and mail.outbox == []

    BudgetAlert.objects.filter(pk=alert.pk).update(
        created_at=timezone.now() - ORPHAN_AFTER - timedelta(seconds=1)
    )
    result = check_budgets()
    assert result["requeued"] == {"email": [alert.pk], "webhook": []}
    assert BudgetAlert.objects.get().email_status == "sent"
    assert [m.to for m in mail.outbox] == [["lead@example.com"]]
    assert check_budgets()["requeued"] == {"email": [], "webhook": []}

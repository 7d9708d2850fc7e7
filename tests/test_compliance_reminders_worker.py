"""Compliance reminders in a real Celery worker process: the beat task, run twice, records and
sends a reminder once, by email (Django's file backend) and webhook (a real HTTP server on
127.0.0.1)."""

import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from compliance.models import ComplianceReminder, DataProcessingAgreement
from compliance.tasks import check_reminders

from .factories import ProviderFactory
from .helpers_budgets import TASK_TIMEOUT_S, WebhookReceiver, start_worker, stop_worker, wait_result
from .helpers_proc import wait_for

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

SECRET_PATH = "/services/T000/B000/reminder-worker-secret"


def _finished(reminder_id: int):
    reminder = ComplianceReminder.objects.get(pk=reminder_id)
    done = {"sent", "failed"}
    return reminder if {reminder.email_status, reminder.webhook_status} <= done else None


def test_a_worker_sends_each_reminder_once(transactional_db, tmp_path):
    assert not settings.CELERY_TASK_ALWAYS_EAGER  # the tasks really leave this process
    expires = timezone.localdate() + datetime.timedelta(days=7)
    DataProcessingAgreement.objects.create(
        provider=ProviderFactory(name="openai-eu"),
        status="signed",
        signed_on=datetime.date(2026, 1, 15),
        expires_on=expires,
        owner="dpo@example.com",
    )
    log = tmp_path / "worker.log"
    with WebhookReceiver(path=SECRET_PATH) as receiver:
        proc = start_worker(
            log,
            EMAIL_URL=f"filemail:///{tmp_path / 'mail'}",
            GATEWAY_COMPLIANCE_WEBHOOK_URL=receiver.url,
            GATEWAY_COMPLIANCE_EMAILS="compliance@example.com",
        )
        try:
            first = wait_result(check_reminders.delay())
            second = wait_result(check_reminders.delay())  # the next day's beat, early
            assert len(first) == 1 and second == []
            reminder = wait_for(
                lambda: _finished(first[0]), timeout=TASK_TIMEOUT_S, what="the reminder"
            )
            assert receiver.calls == 1
        finally:
            stop_worker(proc)
            print(log.read_text()[-5000:])  # for a failing test's report

    assert (reminder.kind, reminder.due_on, reminder.days_before) == ("expiry", expires, 7)
    assert (reminder.email_status, reminder.webhook_status) == ("sent", "sent")
    assert ComplianceReminder.objects.filter(days_before=30, email_status="superseded").exists()
    (mail,) = list((tmp_path / "mail").iterdir())
    text = mail.read_text()
    assert "To: compliance@example.com, dpo@example.com" in text
    assert "Subject: [gateway] openai-eu: agreement expires in 7 days" in text
    assert receiver.bodies[0]["text"].startswith("[gateway] openai-eu: agreement expires in 7")
    assert SECRET_PATH not in log.read_text()

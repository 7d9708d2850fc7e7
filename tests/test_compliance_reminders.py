"""Reminders of agreements' expiry, BAA expiry and review dates: each once, by email (Django's
locmem backend here) and by webhook (a real HTTP server on 127.0.0.1), recorded, read-only in
the admin. A real Celery worker runs the beat task in test_a_worker_sends_each_reminder_once."""

import datetime
import threading

import pytest
from django.conf import settings
from django.core import mail
from django.db import close_old_connections
from django.urls import reverse

from compliance.models import ComplianceReminder, DataProcessingAgreement
from compliance.reminders import (
    WebhookRetryable,
    reminder_email_send,
    reminder_webhook_send,
    reminders_create,
)

from .factories import ProviderFactory
from .helpers_budgets import WebhookReceiver

EXPIRES = datetime.date(2027, 1, 15)
SECRET_PATH = "/services/T000/B000/compliance-secret"


def _days_before(n: int) -> datetime.date:
    return EXPIRES - datetime.timedelta(days=n)


def _agreement(name="openai-eu", **fields) -> DataProcessingAgreement:
    fields = {
        "status": "signed",
        "signed_on": datetime.date(2026, 1, 15),
        "expires_on": EXPIRES,
        "owner": "dpo@example.com",
        **fields,
    }
    return DataProcessingAgreement.objects.create(provider=ProviderFactory(name=name), **fields)


@pytest.fixture
def receiver(settings):
    with WebhookReceiver(path=SECRET_PATH) as server:
        settings.GATEWAY_COMPLIANCE_WEBHOOK_URL = server.url
        yield server


def _run(today: datetime.date) -> list[ComplianceReminder]:
    """What the beat task and its send tasks do, in this process."""
    reminders = reminders_create(today=today)
    for reminder in reminders:
        reminder_email_send(reminder.pk)
        reminder_webhook_send(reminder.pk, final=True)
    return reminders


def _rows():
    return list(
        ComplianceReminder.objects.order_by("due_on", "kind", "-days_before").values_list(
            "kind", "due_on", "days_before", "email_status", "webhook_status"
        )
    )


def test_expiry_is_reminded_30_and_7_days_before_and_on_the_day_each_once(db, receiver, settings):
    settings.GATEWAY_COMPLIANCE_EMAILS = ["compliance@example.com"]
    _agreement()

    assert _run(_days_before(31)) == []  # not yet
    _run(_days_before(30))
    _run(_days_before(30))  # the same day again
    _run(_days_before(20))  # between two reminders: nothing new
    assert len(mail.outbox) == 1 and receiver.calls == 1
    first = mail.outbox[0]
    assert first.subject == "[gateway] openai-eu: agreement expires in 30 days"
    assert sorted(first.to) == ["compliance@example.com", "dpo@example.com"]
    assert "expires on 2027-01-15 (in 30 days)" in first.body

    _run(_days_before(7))
    _run(_days_before(6))
    _run(EXPIRES)
    _run(EXPIRES + datetime.timedelta(days=1))

    assert [m.subject for m in mail.outbox] == [
        "[gateway] openai-eu: agreement expires in 30 days",
        "[gateway] openai-eu: agreement expires in 7 days",
        "[gateway] openai-eu: agreement expired",
    ]
    assert "expired on 2027-01-15" in mail.outbox[2].body
    assert [body["text"].splitlines()[0] for body in receiver.bodies] == [
        m.subject for m in mail.outbox
    ]
    assert _rows() == [
        ("expiry", EXPIRES, 30, "sent", "sent"),
        ("expiry", EXPIRES, 7, "sent", "sent"),
        ("expiry", EXPIRES, 0, "sent", "sent"),
    ]
    reminder = ComplianceReminder.objects.get(days_before=0)
    assert reminder.attempts == 1 and reminder.attempt_log[0]["result"] == "HTTP 200"
    # The webhook URL is a secret: nowhere on the record.
    assert SECRET_PATH not in str(list(ComplianceReminder.objects.values()))


def test_a_first_check_close_to_the_date_sends_only_the_most_urgent(db, receiver):
    _agreement()
    sent = _run(_days_before(5))
    assert [r.days_before for r in sent] == [7]
    assert _rows() == [
        ("expiry", EXPIRES, 30, "superseded", "superseded"),
        ("expiry", EXPIRES, 7, "sent", "sent"),
    ]
    assert [m.subject for m in mail.outbox] == ["[gateway] openai-eu: agreement expires in 5 days"]


def test_baa_and_review_dates_have_their_own_reminders(db, receiver, settings):
    settings.GATEWAY_COMPLIANCE_REMINDER_DAYS = [14]
    review = datetime.date(2026, 12, 1)
    _agreement(
        expires_on=None,
        baa=True,
        baa_signed_on=datetime.date(2026, 1, 15),
        baa_expires_on=datetime.date(2026, 12, 10),
        next_review_on=review,
    )
    _run(datetime.date(2026, 11, 17))  # review in 14 days
    _run(datetime.date(2026, 11, 26))  # BAA in 14 days
    _run(review)
    assert [m.subject for m in mail.outbox] == [
        "[gateway] openai-eu: review due in 14 days",
        "[gateway] openai-eu: BAA expires in 14 days",
        "[gateway] openai-eu: review due",
    ]
    assert "The HIPAA BAA with openai-eu expires on 2026-12-10" in mail.outbox[1].body


def test_dates_that_no_longer_mean_anything_are_not_reminded(db, receiver):
    _agreement("terminated", status="terminated", next_review_on=EXPIRES)
    _agreement("unsigned", status="in_review", next_review_on=None)
    assert reminders_create(today=EXPIRES) == []
    assert ComplianceReminder.objects.count() == 0


def test_a_renewed_agreement_is_reminded_again_for_its_new_date(db, receiver):
    agreement = _agreement()
    _run(_days_before(7))
    agreement.expires_on = EXPIRES.replace(year=2028)
    agreement.save()
    _run(_days_before(6))  # the new date is a year away
    assert len(mail.outbox) == 1
    _run(EXPIRES.replace(year=2028) - datetime.timedelta(days=30))
    assert len(mail.outbox) == 2
    assert ComplianceReminder.objects.filter(due_on=EXPIRES.replace(year=2028)).count() == 1


def test_nowhere_to_send_is_recorded_as_such(db, settings):
    settings.GATEWAY_COMPLIANCE_WEBHOOK_URL = ""
    _agreement(owner="")
    assert reminders_create(today=EXPIRES) == []
    assert _rows() == [
        ("expiry", EXPIRES, 30, "superseded", "superseded"),
        ("expiry", EXPIRES, 7, "superseded", "superseded"),
        ("expiry", EXPIRES, 0, "none", "none"),
    ]


def test_a_failing_webhook_is_retried_then_recorded_failed_without_its_url(db, settings):
    with WebhookReceiver([503, 503], path=SECRET_PATH) as failing:
        settings.GATEWAY_COMPLIANCE_WEBHOOK_URL = failing.url
        _agreement(owner="")
        (reminder,) = reminders_create(today=_days_before(30))
        with pytest.raises(WebhookRetryable):
            reminder_webhook_send(reminder.pk, final=False)
        assert reminder_webhook_send(reminder.pk, final=True) == "failed"
        assert failing.calls == 2
    reminder.refresh_from_db()
    assert (reminder.webhook_status, reminder.attempts) == ("failed", 2)
    assert reminder.last_error == "webhook: HTTP 503"
    assert SECRET_PATH not in str(reminder.attempt_log) + reminder.last_error
    assert reminder_webhook_send(reminder.pk, final=True) == "skipped"  # done is done


def test_two_checks_racing_send_once(transactional_db, receiver):
    _agreement()
    barrier = threading.Barrier(2)
    errors = []

    def check():
        try:
            barrier.wait(timeout=10)
            _run(_days_before(7))
        except Exception as exc:  # reported below: an assert in a thread would be lost
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(mail.outbox) == 1 and receiver.calls == 1
    assert [r[2] for r in _rows()] == [30, 7]


def test_a_send_task_delivered_twice_sends_once(db, receiver):
    _agreement()
    (reminder,) = reminders_create(today=_days_before(7))
    assert reminder_email_send(reminder.pk) == "sent"
    assert reminder_email_send(reminder.pk) == "skipped"
    assert reminder_webhook_send(reminder.pk, final=True) == "sent"
    assert reminder_webhook_send(reminder.pk, final=True) == "skipped"
    assert len(mail.outbox) == 1 and receiver.calls == 1


def test_reminders_are_read_only_in_the_admin(admin_client, receiver):
    _agreement()
    _run(_days_before(7))
    reminder = ComplianceReminder.objects.get(days_before=7)
    listing = admin_client.get(reverse("admin:compliance_compliancereminder_changelist"))
    assert listing.status_code == 200 and "openai-eu" in listing.content.decode()
    url = reverse("admin:compliance_compliancereminder_change", args=[reminder.pk])
    page = admin_client.get(url).content.decode()
    assert "dpo@example.com" in page and 'name="_save"' not in page
    assert admin_client.post(url, {"party": "x"}).status_code == 403
    add = reverse("admin:compliance_compliancereminder_add")
    assert admin_client.get(add).status_code == 403
    delete = reverse("admin:compliance_compliancereminder_delete", args=[reminder.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert ComplianceReminder.objects.filter(pk=reminder.pk, party="openai-eu").exists()


def test_the_beat_schedule_runs_the_check_daily():
    entry = settings.CELERY_BEAT_SCHEDULE["compliance-reminders"]
    assert entry["task"] == "compliance.reminders.check"
    assert entry["schedule"].hour == {settings.GATEWAY_COMPLIANCE_REMINDER_HOUR}
    assert entry["schedule"].minute == {0}


def test_a_reminder_whose_task_was_lost_is_queued_again_by_the_next_check(db, receiver, settings):
    """A Redis restart empties Celery's queue: the reminder row stays `pending`. The next check
    (Celery eager here: the senders run in this process) queues what is owed again."""
    from billing.alerts import ORPHAN_AFTER
    from compliance.tasks import check_reminders

    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.GATEWAY_COMPLIANCE_EMAILS = ["compliance@example.com"]
    _agreement()
    (reminder,) = reminders_create(today=_days_before(7))  # created; its tasks "lost"
    old = reminder.created_at - ORPHAN_AFTER - datetime.timedelta(seconds=1)
    ComplianceReminder.objects.filter(pk=reminder.pk).update(created_at=old)
    assert mail.outbox == [] and receiver.calls == 0

    check_reminders()

    reminder.refresh_from_db()
    assert (reminder.email_status, reminder.webhook_status) == ("sent", "sent")
    assert len(mail.outbox) == 1 and receiver.calls == 1
    check_reminders()  # nothing owed any more
    assert len(mail.outbox) == 1 and receiver.calls == 1

"""Reminders of the registry's dates: an agreement's expiry, its BAA's expiry, its next review.

Each date is reminded GATEWAY_COMPLIANCE_REMINDER_DAYS before it (30 and 7 by default) and on
the day itself (the agreement or BAA has lapsed; the review is due). Once each is the unique
constraint on ComplianceReminder: the daily check may run twice, or on two workers at once;
only the insert that wins sends. A check that finds several reminders of one date due at once
(the first run after a date was set 5 days ahead, or after the beat was down) sends only the
most urgent and records the others as superseded, as budget alerts do with thresholds.

Sending is claimed with a conditional update (pending -> sending), so a send task delivered
twice sends once. Email goes to the agreement's owner and GATEWAY_COMPLIANCE_EMAILS, through
Django's mail backend; the webhook (GATEWAY_COMPLIANCE_WEBHOOK_URL, Slack-compatible) is posted
the way budget alerts are, and its URL, a secret, is never logged nor recorded.

Dates are calendar days in settings.TIME_ZONE, as in the registry: "expires on" a day means
the agreement no longer counts from the start of that day.
"""

import datetime
import logging
from datetime import UTC

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.utils import timezone

from billing.alerts import WebhookRetryable, webhook_post, webhook_url_problem
from billing.models import AlertStatus

from .models import ComplianceReminder, DataProcessingAgreement, ReminderKind

log = logging.getLogger(__name__)

__all__ = [
    "WebhookRetryable",
    "reminder_email_send",
    "reminder_text",
    "reminder_webhook_send",
    "reminders_create",
]


def _dates(agreement: DataProcessingAgreement) -> list[tuple[str, datetime.date]]:
    """The dates of an agreement worth a reminder: only those that still mean something (an
    unsigned agreement's expiry does not; nothing of a terminated one does)."""
    Status = DataProcessingAgreement.Status
    if agreement.status == Status.TERMINATED:
        return []
    found = []
    if agreement.status == Status.SIGNED and agreement.expires_on:
        found.append((ReminderKind.EXPIRY, agreement.expires_on))
    if agreement.baa and agreement.baa_expires_on:
        found.append((ReminderKind.BAA_EXPIRY, agreement.baa_expires_on))
    if agreement.next_review_on:
        found.append((ReminderKind.REVIEW, agreement.next_review_on))
    return found


def _recipients(agreement: DataProcessingAgreement) -> list[str]:
    found = [agreement.owner] if agreement.owner else []
    return sorted(set(found + list(settings.GATEWAY_COMPLIANCE_EMAILS)))


def _status(has_somewhere: bool) -> str:
    return AlertStatus.PENDING if has_somewhere else AlertStatus.NONE


def reminders_create(*, today: datetime.date | None = None) -> list[ComplianceReminder]:
    """Record each reminder that fell due by `today`; returns those with something to send."""
    today = today or timezone.localdate()
    offsets = sorted({*settings.GATEWAY_COMPLIANCE_REMINDER_DAYS, 0})
    has_webhook = bool(settings.GATEWAY_COMPLIANCE_WEBHOOK_URL)
    to_send = []
    agreements = DataProcessingAgreement.objects.select_related("provider")
    for agreement in agreements:
        for kind, due_on in _dates(agreement):
            days_left = (due_on - today).days
            due = [o for o in offsets if days_left <= o]  # most urgent first
            if not due:
                continue
            existing = set(
                ComplianceReminder.objects.filter(
                    agreement=agreement, kind=kind, due_on=due_on
                ).values_list("days_before", flat=True)
            )
            if existing.issuperset(due):  # the common case: each has its row already
                continue
            recipients = _recipients(agreement)
            for days_before in due:
                urgent = days_before == due[0]
                reminder, created = ComplianceReminder.objects.get_or_create(
                    agreement=agreement,
                    kind=kind,
                    due_on=due_on,
                    days_before=days_before,
                    defaults={
                        "party": agreement.party[:320],
                        "days_left": days_left,
                        "recipients": recipients if urgent else [],
                        "email_status": (
                            _status(bool(recipients)) if urgent else AlertStatus.SUPERSEDED
                        ),
                        "webhook_status": (
                            _status(has_webhook) if urgent else AlertStatus.SUPERSEDED
                        ),
                    },
                )
                if not created:
                    continue
                log.info(
                    "compliance reminder",
                    extra={
                        "reminder": reminder.pk,
                        "agreement": agreement.pk,
                        "kind": kind,
                        "due_on": due_on.isoformat(),
                        "days_before": days_before,
                        "sent": urgent,
                    },
                )
                if AlertStatus.PENDING in (reminder.email_status, reminder.webhook_status):
                    to_send.append(reminder)
    return to_send


_WHAT = {
    ReminderKind.EXPIRY: "the data processing agreement with {party}",
    ReminderKind.BAA_EXPIRY: "the HIPAA BAA with {party}",
    ReminderKind.REVIEW: "the review of the data processing agreement with {party}",
}


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def reminder_text(reminder: ComplianceReminder) -> tuple[str, str]:
    """(subject, body) of a reminder, counted from the day of the check that recorded it."""
    what = _WHAT[reminder.kind].format(party=reminder.party)
    due, left = reminder.due_on, reminder.days_left
    if reminder.kind == ReminderKind.REVIEW:
        if left > 0:
            headline = f"review due in {_days(left)}"
            body = f"{what} is due on {due} (in {_days(left)})."
        else:
            headline = "review due" if left == 0 else "review overdue"
            body = f"{what} was due on {due}." if left else f"{what} is due today ({due})."
    else:
        party = "BAA" if reminder.kind == ReminderKind.BAA_EXPIRY else "agreement"
        if left > 0:
            headline = f"{party} expires in {_days(left)}"
            body = (
                f"{what} expires on {due} (in {_days(left)}). From that day on, routing no "
                "longer counts it for the teams that require it."
            )
        else:
            headline = f"{party} expired"
            body = (
                f"{what} expired on {due}: routing no longer counts it for the teams that "
                "require it. Record the renewal in the compliance registry."
            )
    return f"[gateway] {reminder.party}: {headline}", body[0].upper() + body[1:]


def _claim(reminder_id: int, field: str, from_states: tuple[str, ...]):
    """Take the right to send: only one task run moves the reminder out of `from_states`."""
    claimed = ComplianceReminder.objects.filter(
        pk=reminder_id, **{f"{field}__in": from_states}
    ).update(**{field: AlertStatus.SENDING})
    return ComplianceReminder.objects.get(pk=reminder_id) if claimed else None


def reminder_email_send(reminder_id: int) -> str:
    """Email the reminder's recipients through Django's mail backend. Returns the new status."""
    reminder = _claim(reminder_id, "email_status", (AlertStatus.PENDING,))
    if reminder is None:
        return "skipped"
    subject, body = reminder_text(reminder)
    try:
        send_mail(subject, body, None, reminder.recipients, fail_silently=False)
    except Exception as exc:  # any backend: SMTP, file, custom; the reason goes on the record
        ComplianceReminder.objects.filter(pk=reminder_id).update(
            email_status=AlertStatus.FAILED,
            last_error=f"email: {type(exc).__name__}: {exc}"[:500],
        )
        log.warning(
            "compliance reminder email failed", extra={"reminder": reminder_id, "error": repr(exc)}
        )
        return AlertStatus.FAILED
    ComplianceReminder.objects.filter(pk=reminder_id).update(email_status=AlertStatus.SENT)
    return AlertStatus.SENT


def _record(reminder_id: int, result: str, status: str, log_entry: list) -> None:
    ComplianceReminder.objects.filter(pk=reminder_id).update(
        webhook_status=status,
        attempts=F("attempts") + 1,
        attempt_log=log_entry,
        last_error="" if status == AlertStatus.SENT else f"webhook: {result}",
    )


def reminder_webhook_send(reminder_id: int, *, final: bool) -> str:
    """Post the reminder as {"text": ...} to GATEWAY_COMPLIANCE_WEBHOOK_URL.

    Raises WebhookRetryable for a failure worth retrying unless this is the `final` attempt,
    which records the reminder as failed instead. Returns the new status.
    """
    reminder = _claim(reminder_id, "webhook_status", (AlertStatus.PENDING, AlertStatus.RETRYING))
    if reminder is None:
        return "skipped"
    url = settings.GATEWAY_COMPLIANCE_WEBHOOK_URL
    problem = webhook_url_problem(url) if url else "no webhook URL is configured any more"
    if problem:
        ComplianceReminder.objects.filter(pk=reminder_id).update(
            webhook_status=AlertStatus.FAILED, last_error=f"webhook: {problem}"[:500]
        )
        return AlertStatus.FAILED
    subject, body = reminder_text(reminder)
    result, delivered, retryable = webhook_post(url, f"{subject}\n{body}")
    at = datetime.datetime.now(UTC).isoformat()
    entry = [*reminder.attempt_log, {"at": at, "result": result}]
    if delivered:
        _record(reminder_id, result, AlertStatus.SENT, entry)
        return AlertStatus.SENT
    if retryable and not final:
        _record(reminder_id, result, AlertStatus.RETRYING, entry)
        raise WebhookRetryable(result)
    _record(reminder_id, result, AlertStatus.FAILED, entry)
    log.warning("compliance reminder webhook failed", extra={"reminder": reminder_id})
    return AlertStatus.FAILED

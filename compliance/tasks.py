from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing.alerts import orphaned_deliveries
from billing.models import AlertStatus

from .models import ComplianceReminder
from .reminders import (
    WebhookRetryable,
    reminder_email_send,
    reminder_webhook_send,
    reminders_create,
)


@shared_task(name="compliance.reminders.check", ignore_result=False)
def check_reminders() -> list[int]:
    """Beat runs this daily. Overlapping runs are safe: each reminder row is inserted once, and
    only the run whose insert won queues its sending."""
    reminders = reminders_create()
    for reminder in reminders:
        if reminder.email_status == AlertStatus.PENDING:
            send_reminder_email.delay(reminder.pk)
        if reminder.webhook_status == AlertStatus.PENDING:
            send_reminder_webhook.delay(reminder.pk)
    # Deliveries whose task was lost (a Redis restart empties the queue) are queued again.
    emails, webhooks = orphaned_deliveries(timezone.now(), ComplianceReminder)
    for reminder_id in emails:
        send_reminder_email.delay(reminder_id)
    for reminder_id in webhooks:
        send_reminder_webhook.delay(reminder_id)
    return [reminder.pk for reminder in reminders]


@shared_task(name="compliance.reminders.send_email", ignore_result=False)
def send_reminder_email(reminder_id: int) -> str:
    return reminder_email_send(reminder_id)


@shared_task(
    name="compliance.reminders.send_webhook",
    bind=True,
    ignore_result=False,
    autoretry_for=(WebhookRetryable,),
    # The budget alerts' retry settings: one policy for the gateway's outgoing webhooks.
    max_retries=settings.GATEWAY_ALERT_WEBHOOK_RETRIES,
    retry_backoff=settings.GATEWAY_ALERT_WEBHOOK_BACKOFF_S,
    retry_backoff_max=600,
    retry_jitter=True,
)
def send_reminder_webhook(self, reminder_id: int) -> str:
    return reminder_webhook_send(reminder_id, final=self.request.retries >= self.max_retries)

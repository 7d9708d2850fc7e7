import os
import socket

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .alerts import WebhookRetryable, alert_email_send, alert_webhook_send, orphaned_deliveries
from .budget_check import budget_check
from .models import AlertStatus
from .retention import purge
from .rollups import rollup_usage


@shared_task(name="billing.tasks.ingest_usage", ignore_result=False)
def ingest_usage() -> int:
    """Beat runs this every USAGE_INGEST_INTERVAL_S; overlapping runs are safe (consumer group)."""
    if not settings.REDIS_URL:
        from .writer import get_writer

        get_writer().flush()
        return 0
    from .ingest import ingest_usage_stream

    return ingest_usage_stream(consumer=f"{socket.gethostname()}-{os.getpid()}")


# Budget tasks are named outside "billing.tasks.*" so that CELERY_TASK_ROUTES leaves them on the
# `default` queue: the `usage` queue is for draining the usage stream, which must not wait
# behind a slow webhook.


@shared_task(name="billing.budgets.check", ignore_result=False)
def check_budgets() -> dict:
    """Refresh the ledger, reconcile counters, send new alerts. Overlapping runs are safe: the
    ledger is recomputed, counters only rise, and each alert row is inserted once."""
    report = budget_check()
    for alert in report.alerts:
        if alert.email_status == AlertStatus.PENDING:
            send_alert_email.delay(alert.pk)
        if alert.webhook_status == AlertStatus.PENDING:
            send_alert_webhook.delay(alert.pk)
    # Deliveries whose task was lost (a Redis restart empties the queue): the alert rows say
    # what is still owed, so they are queued again; the claim in each sender sends once.
    emails, webhooks = orphaned_deliveries(timezone.now())
    for alert_id in emails:
        send_alert_email.delay(alert_id)
    for alert_id in webhooks:
        send_alert_webhook.delay(alert_id)
    reconciled = report.reconciled
    return {
        "ledger_entries": report.ledger_entries,
        "counters_raised": reconciled.raised if reconciled else None,
        "counters_created": reconciled.created if reconciled else None,
        "alerts": [alert.pk for alert in report.alerts],
        "requeued": {"email": emails, "webhook": webhooks},
    }


@shared_task(name="billing.budgets.send_email", ignore_result=False)
def send_alert_email(alert_id: int) -> str:
    return alert_email_send(alert_id)


@shared_task(
    name="billing.budgets.send_webhook",
    bind=True,
    ignore_result=False,
    autoretry_for=(WebhookRetryable,),
    max_retries=settings.GATEWAY_ALERT_WEBHOOK_RETRIES,
    # Waits BACKOFF_S * 2**retries (capped), randomised below that so that alerts failing
    # together do not retry together.
    retry_backoff=settings.GATEWAY_ALERT_WEBHOOK_BACKOFF_S,
    retry_backoff_max=600,
    retry_jitter=True,
)
def send_alert_webhook(self, alert_id: int) -> str:
    return alert_webhook_send(alert_id, final=self.request.retries >= self.max_retries)


# Rollups and retention: on the `default` queue too (named outside "billing.tasks.*").


@shared_task(name="billing.rollups.run", ignore_result=False)
def run_rollups() -> int:
    """Recompute the days of newly ingested usage into DailyUsage; the rows written."""
    return rollup_usage()


@shared_task(name="billing.retention.run", ignore_result=False)
def run_retention() -> dict:
    """Delete usage rows, content and rollups past their retention; the rows deleted."""
    return purge()

"""Budget alerts: a row per crossed threshold per period, then email and a webhook.

Once per threshold per period is the unique constraint on BudgetAlert: every budget check (on
any worker, however often) may see a crossing; only the insert that wins sends anything. When
one check finds several thresholds crossed at once (a budget lowered, a burst of spend), only
the highest is sent; the lower ones are recorded as superseded, so nobody gets "50%" and "80%"
in the same minute.

Sending is claimed with a conditional update (pending -> sending), so a task delivered twice
sends once. The webhook URL is a secret (it lets anyone post to the channel): it is decrypted
only to make the call, and neither logs, nor error texts, nor the attempt log ever contain it.
"""

import logging
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F

from policies.models import Policy
from routing.models import is_loopback
from tenants.models import Membership

from .budgets import BudgetTarget, LedgerEntry
from .models import AlertStatus, BudgetAlert

log = logging.getLogger(__name__)

_POLICY_FIELDS = {
    "organization": "organization_id",
    "team": "team_id",
    "project": "project_id",
    "key": "api_key_id",
}


class WebhookRetryable(Exception):
    """A webhook call that may succeed later (connect error, timeout, 5xx, 429). Its message is
    what the attempt log records ("HTTP 503"), never the URL."""


def _recipients(target: BudgetTarget) -> list[str]:
    found = list(target.emails)
    if target.level == "team":
        leads = Membership.objects.filter(
            team_id=target.scope_id, role=Membership.Role.LEAD, user__is_active=True
        ).exclude(user__email="")
        found += leads.values_list("user__email", flat=True)
    return sorted(set(found))


def _status(has_somewhere: bool) -> str:
    return AlertStatus.PENDING if has_somewhere else AlertStatus.NONE


def alerts_create(entries: list[LedgerEntry]) -> list[BudgetAlert]:
    """Record each newly crossed threshold; returns the alerts that have something to send."""
    to_send = []
    for entry in entries:
        target = entry.target
        if not target.limit_usd or target.limit_usd <= 0 or not target.thresholds:
            continue
        share = entry.spent_usd * 100 / target.limit_usd
        crossed = [t for t in target.thresholds if share >= t]
        scope = {"level": target.level, "scope_id": target.scope_id, "period": entry.period}
        if not crossed:
            continue
        # The common case, each minute: every crossed threshold already has its row.
        if BudgetAlert.objects.filter(**scope, threshold__in=crossed).count() == len(crossed):
            continue
        recipients = _recipients(target)
        for threshold in crossed:
            highest = threshold == crossed[-1]
            email = _status(bool(recipients)) if highest else AlertStatus.SUPERSEDED
            webhook = _status(target.has_webhook) if highest else AlertStatus.SUPERSEDED
            alert, created = BudgetAlert.objects.get_or_create(
                **scope,
                threshold=threshold,
                defaults={
                    "label": target.label[:250],
                    "spent_usd": entry.spent_usd,
                    "limit_usd": target.limit_usd,
                    "recipients": recipients if highest else [],
                    "email_status": email,
                    "webhook_status": webhook,
                },
            )
            if created:
                log.info(
                    "budget alert",
                    extra={
                        "alert": alert.pk,
                        "budget": target.label,
                        "period": entry.period,
                        "threshold": str(threshold),
                        "sent": highest,
                    },
                )
                if highest and AlertStatus.PENDING in (email, webhook):
                    to_send.append(alert)
    return to_send


# A delivery not even attempted this long after its alert was created lost its task: the broker
# (Redis) restarted without persistence, or the message was dropped. Far above the normal wait
# for a worker, so a live task is never doubled (and the claim would make it send once anyway).
ORPHAN_AFTER = timedelta(minutes=10)


def orphaned_deliveries(now: datetime, model=BudgetAlert) -> tuple[list[int], list[int]]:
    """Rows (budget alerts, or any model with created_at, email_status and webhook_status, such
    as compliance reminders) whose email, and whose webhook, is still `pending` long after it
    was created: (email ids, webhook ids), for the periodic check to queue again. Only
    never-attempted ones: a webhook in `retrying` has a retry scheduled with its own backoff."""
    old = model.objects.filter(created_at__lt=now - ORPHAN_AFTER)
    emails = old.filter(email_status=AlertStatus.PENDING).values_list("pk", flat=True)
    webhooks = old.filter(webhook_status=AlertStatus.PENDING).values_list("pk", flat=True)
    return list(emails[:100]), list(webhooks[:100])


def percent(value: Decimal) -> str:
    """50 for Decimal("50.00"), 12.5 for Decimal("12.50")."""
    return f"{Decimal(value).normalize():f}"


def _usd(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def alert_text(alert: BudgetAlert) -> str:
    share = alert.spent_usd * 100 / alert.limit_usd if alert.limit_usd else Decimal(0)
    share = share.to_integral_value(ROUND_FLOOR)  # 99.6% is not yet "100%"
    return (
        f"Budget alert: {alert.label} has spent {_usd(alert.spent_usd)} of its "
        f"{_usd(alert.limit_usd)} budget for {alert.period} ({share}%, "
        f"threshold {percent(alert.threshold)}%)."
    )


def _claim(alert_id: int, field: str, from_states: tuple[str, ...]) -> BudgetAlert | None:
    """Take the right to send: only one task run moves the alert out of `from_states`."""
    claimed = BudgetAlert.objects.filter(pk=alert_id, **{f"{field}__in": from_states}).update(
        **{field: AlertStatus.SENDING}
    )
    return BudgetAlert.objects.get(pk=alert_id) if claimed else None


def alert_email_send(alert_id: int) -> str:
    """Email the alert's recipients through Django's mail backend. Returns the new status."""
    alert = _claim(alert_id, "email_status", (AlertStatus.PENDING,))
    if alert is None:
        return "skipped"
    subject = (
        f"[gateway] {alert.label} at {percent(alert.threshold)}% of its budget for {alert.period}"
    )
    body = alert_text(alert)
    try:
        send_mail(subject, body, None, alert.recipients, fail_silently=False)
    except Exception as exc:  # any backend: SMTP, file, custom; the reason goes on the record
        BudgetAlert.objects.filter(pk=alert_id).update(
            email_status=AlertStatus.FAILED, last_error=f"email: {type(exc).__name__}: {exc}"[:500]
        )
        log.warning("budget alert email failed", extra={"alert": alert_id, "error": repr(exc)})
        return AlertStatus.FAILED
    BudgetAlert.objects.filter(pk=alert_id).update(email_status=AlertStatus.SENT)
    return AlertStatus.SENT


def _webhook_url(alert: BudgetAlert) -> str:
    policy = Policy.objects.filter(**{_POLICY_FIELDS[alert.level]: alert.scope_id}).first()
    return policy.alert_webhook_url if policy is not None else ""


def webhook_url_problem(url: str) -> str | None:
    # The message travels to this URL: https, or plain http to this machine only (a relay
    # beside the gateway, the tests' server), as for providers' api_base.
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return None
    return "the webhook URL must be https:// (plain http only to this machine)"


def webhook_post(url: str, text: str) -> tuple[str, bool, bool]:
    """One call. Returns (what to record, delivered, worth retrying); never the URL."""
    try:
        with httpx.Client(
            timeout=settings.GATEWAY_ALERT_WEBHOOK_TIMEOUT_S,
            follow_redirects=False,  # a redirect could carry the message somewhere unconfigured
            trust_env=False,
        ) as client:
            response = client.post(url, json={"text": text})
    except httpx.TimeoutException:
        return "timeout", False, True
    except httpx.TransportError as exc:  # connect errors, a dropped connection
        return type(exc).__name__, False, True
    except Exception as exc:  # a malformed URL: its text could hold the URL, so the type only
        return type(exc).__name__, False, False
    status = response.status_code
    return f"HTTP {status}", 200 <= status < 300, status == 429 or status >= 500


def _record(alert_id: int, result: str, status: str, log_entry: list) -> None:
    BudgetAlert.objects.filter(pk=alert_id).update(
        webhook_status=status,
        attempts=F("attempts") + 1,
        attempt_log=log_entry,
        last_error="" if status == AlertStatus.SENT else f"webhook: {result}",
    )


def alert_webhook_send(alert_id: int, *, final: bool) -> str:
    """Post the alert as Slack-compatible JSON ({"text": ...}).

    Raises WebhookRetryable for a failure worth retrying unless this is the `final` attempt,
    which records the alert as failed instead. Returns the new status.
    """
    alert = _claim(alert_id, "webhook_status", (AlertStatus.PENDING, AlertStatus.RETRYING))
    if alert is None:
        return "skipped"
    try:
        url = _webhook_url(alert)
    except Exception as exc:  # undecryptable (encryption keys rotated away): say so, not what
        url, problem = "", f"the webhook URL cannot be decrypted ({type(exc).__name__})"
    else:
        problem = "the policy has no webhook URL any more" if not url else None
    problem = problem or webhook_url_problem(url)
    if problem:
        BudgetAlert.objects.filter(pk=alert_id).update(
            webhook_status=AlertStatus.FAILED, last_error=f"webhook: {problem}"[:500]
        )
        return AlertStatus.FAILED
    result, delivered, retryable = webhook_post(url, alert_text(alert))
    entry = [*alert.attempt_log, {"at": datetime.now(UTC).isoformat(), "result": result}]
    if delivered:
        _record(alert_id, result, AlertStatus.SENT, entry)
        return AlertStatus.SENT
    if retryable and not final:
        _record(alert_id, result, AlertStatus.RETRYING, entry)
        raise WebhookRetryable(result)
    _record(alert_id, result, AlertStatus.FAILED, entry)
    log.warning("budget alert webhook failed", extra={"alert": alert_id, "result": result})
    return AlertStatus.FAILED

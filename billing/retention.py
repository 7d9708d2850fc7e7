"""Retention: usage rows, stored content and (optionally) rollups past their age are deleted.

Celery beat runs `purge` every GATEWAY_RETENTION_INTERVAL_S (task billing.retention.run):
- usage rows created before the UTC midnight GATEWAY_USAGE_RETENTION_DAYS ago, whole days only,
  and never a day that still has rows the rollup has not seen (billing/rollups.py): its
  DailyUsage rows are what remains of a purged day, so they must be complete first;
- stored content (UsageContent) older than GATEWAY_CONTENT_RETENTION_DAYS;
- DailyUsage rows older than GATEWAY_ROLLUP_RETENTION_DAYS, when that is not 0 (kept forever).

Deletes go GATEWAY_RETENTION_BATCH rows at a time: a batch of primary keys read in index order,
then one DELETE by key, committed on its own. Each statement locks only the rows it deletes,
for milliseconds, so ingestion and dashboards never wait behind a purge of millions of rows.

Spend ledgers and budget alerts are never purged. Budgets are summed from usage rows of the
current and the previous month (billing/budgets.py), so usage retention is never below
MIN_USAGE_RETENTION_DAYS (gateway/checks.py refuses a lower setting; this clamps as well).
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Min, QuerySet
from django.utils import timezone

from .models import DailyUsage, UsageContent, UsageRecord
from .rollups import PURGED, advance, day_start, rolled_up_before, watermark

log = logging.getLogger(__name__)

# Two calendar months: the budget period in progress and the one before it, which the budget
# check still refreshes for late usage.
MIN_USAGE_RETENTION_DAYS = 62


def delete_in_batches(rows: QuerySet, order_field: str, batch: int) -> int:
    """Delete `rows` `batch` at a time, in `order_field` order (an indexed column)."""
    deleted = 0
    after = None
    while True:
        page = rows if after is None else rows.filter(**{f"{order_field}__gte": after})
        found = list(page.order_by(order_field).values_list("pk", order_field)[:batch])
        if not found:
            return deleted
        # Resume from the last key seen, not from the start of the index: the start is full
        # of the entries of rows just deleted until vacuum removes them.
        after = found[-1][1]
        count, _ = rows.model.objects.filter(pk__in=[pk for pk, _ in found]).delete()
        deleted += count
        if len(found) < batch:
            return deleted


def usage_days_kept() -> int:
    days = settings.GATEWAY_USAGE_RETENTION_DAYS
    if days < MIN_USAGE_RETENTION_DAYS:
        log.warning(
            "GATEWAY_USAGE_RETENTION_DAYS=%s is below %s (budgets need two months of usage): "
            "keeping %s days",
            days,
            MIN_USAGE_RETENTION_DAYS,
            MIN_USAGE_RETENTION_DAYS,
        )
    return max(days, MIN_USAGE_RETENTION_DAYS)


def usage_cutoff(now: datetime) -> datetime | None:
    """Usage rows created before this UTC midnight may be deleted; None: none may."""
    rolled = rolled_up_before()
    if rolled is None:
        return None  # nothing is rolled up yet: every day's detail is still its only record
    cutoff = day_start(now - timedelta(days=usage_days_kept()))
    # Rows the rollup has not seen yet, in days that would go (late arrivals, or a rollup
    # that has not run for a while): keep from the first such day on.
    waiting = UsageRecord.objects.filter(ingested_at__gte=rolled, created_at__lt=cutoff)
    purged = watermark(PURGED)
    if purged is not None:  # late rows of days already purged are never rolled up
        waiting = waiting.filter(created_at__gte=purged)
    first = waiting.aggregate(first=Min("created_at"))["first"]
    return cutoff if first is None else min(cutoff, day_start(first))


def purge(*, now: datetime | None = None) -> dict[str, int]:
    """Delete what is past its retention; the rows deleted per table."""
    now = now or timezone.now()
    batch = max(1, settings.GATEWAY_RETENTION_BATCH)
    deleted = {"usage_records": 0, "usage_content": 0, "daily_usage": 0}

    cutoff = usage_cutoff(now)
    if cutoff is not None:
        # Recorded first: from now on the rollup leaves these days alone, so a late row cannot
        # make it recompute a day from the part of its rows this purge has not reached yet.
        advance(PURGED, cutoff)
        expired = UsageRecord.objects.filter(created_at__lt=cutoff)
        deleted["usage_records"] = delete_in_batches(expired, "created_at", batch)

    content_before = now - timedelta(days=settings.GATEWAY_CONTENT_RETENTION_DAYS)
    expired = UsageContent.objects.filter(created_at__lt=content_before)
    deleted["usage_content"] = delete_in_batches(expired, "created_at", batch)

    if settings.GATEWAY_ROLLUP_RETENTION_DAYS > 0:
        oldest_kept = (now - timedelta(days=settings.GATEWAY_ROLLUP_RETENTION_DAYS)).date()
        expired = DailyUsage.objects.filter(day__lt=oldest_kept)
        deleted["daily_usage"] = delete_in_batches(expired, "day", batch)

    log.info(
        "retention purge",
        extra={**deleted, "usage_cutoff": cutoff.isoformat() if cutoff else None},
    )
    return deleted

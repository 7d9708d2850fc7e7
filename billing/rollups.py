"""Daily rollups: DailyUsage rows rebuilt from usage records, incrementally and idempotently.

Celery beat runs `rollup_usage` every GATEWAY_ROLLUP_INTERVAL_S (task billing.rollups.run). It
finds the UTC days of the usage rows ingested since its watermark, recomputes each of those days
entirely from its usage rows (billing/rollup_aggregates.py) and replaces the day's DailyUsage
rows in one transaction, then moves the watermark to the instant the run started.

- Never incremented: a day is always the sum of its stored rows, so a replay, an overlapping
  run or an event ingested twice (ingestion skips known request ids) changes nothing, and a row
  that arrives days late (a replayed spool) corrects its own day.
- Rows are looked for from GATEWAY_ROLLUP_OVERLAP_S before the watermark: `ingested_at` is set
  before the insert commits, so a slow commit can land behind a watermark already moved past it.
- A day whose usage rows were purged (billing/retention.py) is never recomputed: its rollup is
  all that is left of it, and late rows for it would replace it with a fraction.
"""

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import DailyUsage, RollupState, UsageRecord
from .rollup_aggregates import aggregate_day

log = logging.getLogger(__name__)

# RollupState names. ROLLUP: usage rows ingested before watermark - overlap are rolled up.
# PURGED: usage rows created before this watermark (a UTC midnight) have been purged.
ROLLUP = "daily_usage"
PURGED = "usage_purged"

_COST_PLACES = Decimal("1e-12")  # DailyUsage.cost_usd's decimal places
_KEY_FIELDS = ("team_id", "project_id", "api_key_id", "model", "provider_name", "use_case")
_VALUE_FIELDS = (
    "organization_id",
    "team_slug",
    "key_prefix",
    "requests",
    "errors",
    "errors_by_type",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_hist",
)


def day_start(moment: datetime) -> datetime:
    """The UTC midnight that starts `moment`'s day."""
    return datetime.combine(moment.astimezone(UTC).date(), time.min, tzinfo=UTC)


def watermark(name: str) -> datetime | None:
    return RollupState.objects.filter(name=name).values_list("watermark", flat=True).first()


def rolled_up_before() -> datetime | None:
    """Usage rows ingested before this instant are in the rollups; None: none are yet."""
    mark = watermark(ROLLUP)
    return None if mark is None else mark - timedelta(seconds=settings.GATEWAY_ROLLUP_OVERLAP_S)


def advance(name: str, to: datetime) -> None:
    """Move a watermark forward (never back: runs may overlap and finish out of order)."""
    RollupState.objects.get_or_create(name=name)
    RollupState.objects.filter(Q(watermark__isnull=True) | Q(watermark__lt=to), name=name).update(
        watermark=to
    )


def _usage_days(rows) -> set[date]:
    days = rows.order_by().annotate(day=TruncDate("created_at", tzinfo=UTC))
    return set(days.values_list("day", flat=True).distinct())


def _fresh_rows(day: date) -> dict[tuple, dict]:
    fresh = aggregate_day(day)
    for values in fresh.values():
        values["cost_usd"] = Decimal(values["cost_usd"] or 0).quantize(_COST_PLACES)
        values["input_tokens"] = values["input_tokens"] or 0
        values["output_tokens"] = values["output_tokens"] or 0
    return fresh


def _stored_rows(day: date) -> list[tuple[tuple, dict]]:
    return [
        (
            tuple(getattr(row, name) for name in _KEY_FIELDS),
            {name: getattr(row, name) for name in _VALUE_FIELDS},
        )
        for row in DailyUsage.objects.filter(day=day)
    ]


def _rollup_day(day: date) -> int:
    """Replace one day's DailyUsage rows by the sums of its usage rows; the rows written (0
    when the stored rows already are those sums)."""
    with transaction.atomic():
        # One day's replacement at a time, across workers: an overlapping run waits here, then
        # recomputes from what the first one committed, instead of inserting rows beside its.
        RollupState.objects.select_for_update().get(name=ROLLUP)
        fresh = _fresh_rows(day)
        stored = _stored_rows(day)
        if len(stored) == len(fresh) and all(fresh.get(key) == values for key, values in stored):
            return 0
        DailyUsage.objects.filter(day=day).delete()
        DailyUsage.objects.bulk_create(
            [
                DailyUsage(day=day, **dict(zip(_KEY_FIELDS, key, strict=True)), **values)
                for key, values in fresh.items()
            ],
            batch_size=1000,
        )
        return len(fresh)


def rollup_days(days: Iterable[date]) -> int:
    """Recompute these days now (whether or not anything new arrived); the rows written.

    A day with no usage rows left loses its rollup rows, unless its rows were purged.
    """
    RollupState.objects.get_or_create(name=ROLLUP)
    purged = watermark(PURGED)
    written = 0
    for day in sorted(set(days)):
        if purged is not None and day < purged.date():
            log.warning("usage of %s not rolled up: its day is past retention and purged", day)
            continue
        written += _rollup_day(day)
    return written


def rollup_usage(*, now: datetime | None = None) -> int:
    """The beat task's pass: recompute the days of the rows ingested since the last pass."""
    now = now or timezone.now()  # taken first: rows ingested from here on are the next pass's
    since = rolled_up_before()
    rows = UsageRecord.objects.all()
    if since is not None:
        rows = rows.filter(ingested_at__gte=since)
    days = _usage_days(rows)
    written = rollup_days(days)
    advance(ROLLUP, now)
    if written:
        log.info("usage rolled up", extra={"days": len(days), "rows_written": written})
    return written


def rollup_rebuild(*, since: date | None = None) -> int:
    """Recompute every day (from `since`) that has usage rows or rollup rows."""
    rows, rollups = UsageRecord.objects.all(), DailyUsage.objects.all()
    if since is not None:
        rows = rows.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
        rollups = rollups.filter(day__gte=since)
    days = _usage_days(rows) | set(rollups.order_by().values_list("day", flat=True).distinct())
    return rollup_days(days)

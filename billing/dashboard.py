"""What the admin's index and its spend columns read: a few aggregate queries over the daily
rollups and the spend ledger, never a scan of the request log.

Today's numbers are the day's rollups (DailyUsage, rebuilt every GATEWAY_ROLLUP_INTERVAL_S)
plus the usage rows ingested since the last rollup pass: the tail is bounded by the rollup
interval, and read through the ingested_at index.
"""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from policies.periods import period_of

from .budgets import BudgetTarget, budgeted_policies, target_of
from .models import DailyUsage, SpendLedger, UsageRecord
from .rollups import ROLLUP, watermark


@dataclass(frozen=True, slots=True)
class Today:
    day: date  # UTC
    requests: int
    errors: int
    cost_usd: Decimal
    rolled_up_at: datetime | None  # the rollups' watermark; None: never rolled up


def today_usage(now: datetime | None = None) -> Today:
    now = now or timezone.now()
    day = now.astimezone(UTC).date()
    rolled = DailyUsage.objects.filter(day=day).aggregate(
        requests=Sum("requests"), errors=Sum("errors"), cost=Sum("cost_usd")
    )
    mark = watermark(ROLLUP)
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    tail = UsageRecord.objects.filter(created_at__gte=start)
    if mark is not None:
        tail = tail.filter(ingested_at__gte=mark)
    fresh = tail.aggregate(
        requests=Count("pk"),
        errors=Count("pk", filter=Q(status_code__gte=400)),
        cost=Sum("cost_usd"),
    )
    return Today(
        day=day,
        requests=(rolled["requests"] or 0) + fresh["requests"],
        errors=(rolled["errors"] or 0) + fresh["errors"],
        cost_usd=(rolled["cost"] or Decimal(0)) + (fresh["cost"] or Decimal(0)),
        rolled_up_at=mark,
    )


@dataclass(frozen=True, slots=True)
class BudgetUse:
    target: BudgetTarget
    period: str
    spent_usd: Decimal
    percent: float


def budgets_near_limit(*, at_percent: float | None = None, now: float | None = None):
    """Budgets whose ledger spend this period is at or above `at_percent` of their limit, the
    most used first. Two queries: the budgeted policies, and their ledger rows."""
    at_percent = settings.GATEWAY_ADMIN_BUDGET_WARN_PERCENT if at_percent is None else at_percent
    now = time.time() if now is None else now
    targets = [
        t
        for t in map(target_of, budgeted_policies().filter(monthly_budget_usd__gt=0))
        if t is not None and t.limit_usd
    ]
    if not targets:
        return []
    periods = {t.policy_id: period_of(now, t.timezone) for t in targets}
    wanted = Q(pk__in=[])
    for t in targets:
        wanted |= Q(level=t.level, scope_id=t.scope_id, period=periods[t.policy_id])
    ledger = {
        (row.level, row.scope_id, row.period): row.spent_usd
        for row in SpendLedger.objects.filter(wanted)
    }
    found = []
    for t in targets:
        period = periods[t.policy_id]
        spent = ledger.get((t.level, t.scope_id, period), Decimal(0))
        percent = float(spent / t.limit_usd * 100)
        if percent >= at_percent:
            found.append(BudgetUse(target=t, period=period, spent_usd=spent, percent=percent))
    return sorted(found, key=lambda b: -b.percent)


def month_start(now: datetime | None = None) -> date:
    """The first UTC day of this month: the "this period" of the spend columns."""
    today = (now or timezone.now()).astimezone(UTC).date()
    return today.replace(day=1)


def spend_this_month(field: str, ids) -> dict[int, Decimal]:
    """Spend this UTC month by team_id or api_key_id, for a page of rows: one query over the
    rollups (the request log is never read)."""
    ids = [i for i in ids if i is not None]
    if not ids:
        return {}
    rows = (
        DailyUsage.objects.filter(day__gte=month_start(), **{f"{field}__in": ids})
        .values(field)
        .annotate(total=Sum("cost_usd"))
        .order_by()
    )
    return {row[field]: row["total"] for row in rows}

"""What the admin's budget overview shows for each budget: read-only, a few queries per page."""

import time
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q

from infra.state import StateUnavailable
from policies.models import Policy
from policies.periods import period_of

from .budget_state import Counters, read_counters
from .budgets import BudgetTarget, target_of
from .models import AlertStatus, BudgetAlert, SpendLedger


@dataclass(frozen=True, slots=True)
class BudgetRow:
    target: BudgetTarget
    period: str  # the current one, in the organization's timezone
    ledger_usd: Decimal | None  # None: the budget check has not run this period
    counters: Counters | None  # None: Redis unavailable
    alerts_sent: tuple[Decimal, ...]  # thresholds whose alert went out (by email or webhook)


def budget_rows(policies: list[Policy], now: float | None = None) -> dict[int, BudgetRow]:
    """Rows for a page of policies (their related rows selected), keyed by policy id."""
    now = time.time() if now is None else now
    targets = [(p.pk, t) for p in policies if (t := target_of(p)) is not None]
    if not targets:
        return {}
    periods = {pk: period_of(now, t.timezone) for pk, t in targets}
    wanted = Q(pk__in=[])
    for pk, t in targets:
        wanted |= Q(level=t.level, scope_id=t.scope_id, period=periods[pk])
    ledger = {
        (row.level, row.scope_id, row.period): row.spent_usd
        for row in SpendLedger.objects.filter(wanted)
    }
    sent: dict[tuple, list[Decimal]] = {}
    delivered = Q(email_status=AlertStatus.SENT) | Q(webhook_status=AlertStatus.SENT)
    for alert in BudgetAlert.objects.filter(wanted).filter(delivered).order_by("threshold"):
        sent.setdefault((alert.level, alert.scope_id, alert.period), []).append(alert.threshold)
    rows = {}
    redis_ok = True
    for pk, target in targets:
        period = periods[pk]
        counters = None
        if redis_ok:
            try:
                counters = read_counters(target.stem, period, now)
            except StateUnavailable:
                redis_ok = False  # one timeout per page, not one per row
        scope = (target.level, target.scope_id, period)
        rows[pk] = BudgetRow(
            target=target,
            period=period,
            ledger_usd=ledger.get(scope),
            counters=counters,
            alerts_sent=tuple(sent.get(scope, ())),
        )
    return rows

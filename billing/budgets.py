"""Budget spend from the truth: usage records in Postgres, summed per scope and period.

Admission (policies/admission.py) keeps fast counters in Redis; this module is where they come
from when Redis has none (`seed_spend`, the seed callback of `admit`) and what they are held to
(`spend_ledger_refresh`, then billing/budget_state.py raises counters that fell behind).

A period is a calendar month in the organization's timezone (policies/periods.py); a usage
record belongs to the period in which its request arrived (`created_at`), the same instant
admission used to choose the period it reserved against.
"""

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, Sum

from infra.db import db_call_bounded
from policies.models import Policy
from policies.periods import period_bounds, period_of
from policies.types import BudgetScope, usd_to_micros

from .models import SpendLedger, UsageRecord

# A BudgetScope's level -> the usage record's column that names its scope.
LEVEL_FIELDS = {
    "organization": "organization_id",
    "team": "team_id",
    "project": "project_id",
    "key": "api_key_id",
}
# Usage of a period's last minutes can arrive after it ended (requests in flight, ingestion
# lag, replayed spools): the previous period is refreshed this long into the new one.
LATE_USAGE_S = 3600


def budget_stem(level: str, scope_id: int) -> str:
    """The state-store key stem of a budget: BudgetScope.key, for callers without a scope."""
    return f"gw:bud:{level}:{scope_id}"


def _period_filter(period: str, tz: str) -> Q:
    start, end = period_bounds(period, tz)
    return Q(created_at__gte=start, created_at__lt=end)


def budget_spend_micros(level: str, scope_id: int, period: str, tz: str) -> int:
    """What one scope spent in one period, from usage records, in micro-dollars (rounded up)."""
    total = UsageRecord.objects.filter(
        _period_filter(period, tz), **{LEVEL_FIELDS[level]: scope_id}
    ).aggregate(spent=Sum("cost_usd"))["spent"]
    return usd_to_micros(total or 0)


def spend_micros_many(scopes: Sequence[tuple[str, int]], period: str, tz: str) -> list[int]:
    """`budget_spend_micros` for several (level, scope_id) at once, in one query."""
    if not scopes:
        return []
    sums = {
        f"s{i}": Sum("cost_usd", filter=Q(**{LEVEL_FIELDS[level]: scope_id}))
        for i, (level, scope_id) in enumerate(scopes)
    }
    anyone = Q()
    for level, scope_id in scopes:
        anyone |= Q(**{LEVEL_FIELDS[level]: scope_id})
    totals = UsageRecord.objects.filter(_period_filter(period, tz)).filter(anyone).aggregate(**sums)
    return [usd_to_micros(totals[f"s{i}"] or 0) for i in range(len(scopes))]


async def seed_spend(scopes: Sequence[BudgetScope], period: str, tz: str) -> list[int]:
    """The seed callback for admission: each scope's spend in `period` from Postgres, in the
    scopes' order (policies.admission.Seed).

    Called when Redis has no spend counter (flushed, restarted, a new period); one query on the
    bounded database pool, so a database that is down or busy fails fast (DatabaseError /
    DatabaseBusy) and admission decides what a hard budget does then.
    """
    pairs = [(scope.level, scope.scope_id) for scope in scopes]
    return await db_call_bounded(spend_micros_many, scopes=pairs, period=period, tz=tz)


# --- Budgeted scopes and the ledger ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetTarget:
    """A scope whose policy sets a budget or alert thresholds."""

    level: str
    scope_id: int
    label: str  # "team 'search'"
    timezone: str  # the organization's
    policy_id: int
    limit_usd: Decimal | None
    thresholds: tuple[Decimal, ...]  # percent, ascending
    emails: tuple[str, ...]  # the policy's alert_emails
    has_webhook: bool

    @property
    def stem(self) -> str:
        return budget_stem(self.level, self.scope_id)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    target: BudgetTarget
    period: str
    spent_usd: Decimal


def _thresholds(raw) -> tuple[Decimal, ...]:
    # Written by loadconfig and the admin, both of which validate; anything else is skipped
    # rather than stopping every other scope's check.
    found = set()
    for value in raw if isinstance(raw, list) else ():
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = Decimal(str(value))
            except ArithmeticError:
                continue
            if number.is_finite() and 0 < number < 100_000:
                # BudgetAlert keeps two decimals; the lookup must use what the row will hold.
                found.add(number.quantize(Decimal("0.01")))
    return tuple(sorted(found))


def target_of(policy: Policy) -> BudgetTarget | None:
    """The budget of one policy (its related rows selected), None for an unattached one."""
    level, target = policy.attached_to()
    if target is None:
        return None
    if level == "organization":
        org, label = target, f"organization '{target.slug}'"
    elif level == "team":
        org, label = target.organization, f"team '{target.slug}'"
    elif level == "project":
        org, label = target.team.organization, f"project '{target}'"
    else:
        org, label = target.team.organization, f"key '{target.name}'"
    return BudgetTarget(
        level=level,
        scope_id=target.pk,
        label=label,
        timezone=org.timezone,
        policy_id=policy.pk,
        limit_usd=policy.monthly_budget_usd,
        thresholds=_thresholds(policy.alert_thresholds),
        emails=tuple(
            e.strip() for e in policy.alert_emails or () if isinstance(e, str) and e.strip()
        ),
        has_webhook=bool(policy.alert_webhook_encrypted),
    )


BUDGET_RELATED = (
    "organization",
    "team__organization",
    "project__team__organization",
    "api_key__team__organization",
)


def budgeted_policies():
    return (
        Policy.objects.filter(Q(monthly_budget_usd__isnull=False) | ~Q(alert_thresholds=[]))
        .select_related(*BUDGET_RELATED)
        .order_by("pk")
    )


def budget_targets() -> list[BudgetTarget]:
    return [t for t in map(target_of, budgeted_policies()) if t is not None]


def periods_to_check(now: float, tz: str) -> list[str]:
    """The current period, and the previous one while its late usage may still arrive."""
    current = period_of(now, tz)
    start, _ = period_bounds(current, tz)
    if now - start.timestamp() < LATE_USAGE_S:
        return [period_of(start.timestamp() - 1, tz), current]
    return [current]


def _spend_by_target(
    targets: Iterable[BudgetTarget], period: str, tz: str
) -> dict[BudgetTarget, Decimal]:
    """One query for every target of one timezone and period: usage grouped by its four scope
    columns, summed per target here (each group adds to its organization, team, project, key)."""
    targets = list(targets)
    ids: dict[str, set[int]] = defaultdict(set)
    for target in targets:
        ids[target.level].add(target.scope_id)
    anyone = Q()
    for level, scope_ids in ids.items():
        anyone |= Q(**{f"{LEVEL_FIELDS[level]}__in": scope_ids})
    groups = (
        UsageRecord.objects.filter(_period_filter(period, tz))
        .filter(anyone)
        .values(*LEVEL_FIELDS.values())
        .annotate(spent=Sum("cost_usd"))
        .order_by()
    )
    totals: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for group in groups:
        for level, field in LEVEL_FIELDS.items():
            if group[field] in ids.get(level, ()):
                totals[level, group[field]] += group["spent"] or 0
    return {t: totals.get((t.level, t.scope_id), Decimal(0)) for t in targets}


def spend_ledger_refresh(now: float | None = None) -> list[LedgerEntry]:
    """Recompute the ledger of every budgeted scope for the periods being checked.

    Each row is replaced by the current sum (never incremented), so overlapping or repeated
    runs agree. Returns the entries written, for reconciliation and alerts.
    """
    now = time.time() if now is None else now
    by_group: dict[tuple[str, str], list[BudgetTarget]] = defaultdict(list)
    for target in budget_targets():
        for period in periods_to_check(now, target.timezone):
            by_group[target.timezone, period].append(target)
    entries = [
        LedgerEntry(target, period, spent)
        for (tz, period), targets in by_group.items()
        for target, spent in _spend_by_target(targets, period, tz).items()
    ]
    SpendLedger.objects.bulk_create(
        [
            SpendLedger(
                level=e.target.level,
                scope_id=e.target.scope_id,
                period=e.period,
                spent_usd=e.spent_usd,
            )
            for e in entries
        ],
        update_conflicts=True,
        unique_fields=["level", "scope_id", "period"],
        update_fields=["spent_usd", "updated_at"],
        batch_size=500,
    )
    return entries

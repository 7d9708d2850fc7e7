"""Reads for the analytics pages: over the daily rollups (DailyUsage) only, never the request
log, so a page costs the same whatever the traffic.

Every selector takes a Period (inclusive UTC days, as DailyUsage.day is) and an optional team;
without one it covers every team (the admin's view). Money stays Decimal here; the charts turn
it into floats for geometry only.
"""

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from policies.models import Policy
from tenants.models import ApiKey, Project, Team

from .models import LATENCY_BUCKETS_MS, DailyUsage

# A longer period would draw thousands of bars and scan a year's rollups for nothing useful.
MAX_PERIOD_DAYS = 366
TOP_LIMIT = 10
ZERO = Decimal(0)


class PeriodError(ValueError):
    """A period the pages refuse, with a message meant for the person who asked for it."""


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(n) for n in range((self.end - self.start).days + 1)]

    @classmethod
    def current_month(cls, today: date | None = None) -> "Period":
        today = today or timezone.now().date()
        return cls(today.replace(day=1), today)

    @classmethod
    def parse(cls, start: str | None, end: str | None, today: date | None = None) -> "Period":
        """The period of `?start=YYYY-MM-DD&end=YYYY-MM-DD`; with neither, the current month
        (UTC) so far."""
        default = cls.current_month(today)
        try:
            last = date.fromisoformat(end) if end else None
            # An end alone means its month up to it; a start alone, from it up to today.
            first = date.fromisoformat(start) if start else (last or default.end).replace(day=1)
            last = last or max(first, default.end)
        except ValueError as exc:
            raise PeriodError("start and end must be dates written YYYY-MM-DD") from exc
        if first > last:
            raise PeriodError(f"start ({first}) is after end ({last})")
        if (last - first).days + 1 > MAX_PERIOD_DAYS:
            raise PeriodError(f"a period spans at most {MAX_PERIOD_DAYS} days")
        return cls(first, last)


def _rows(period: Period, team: Team | None) -> QuerySet:
    rows = DailyUsage.objects.filter(day__gte=period.start, day__lte=period.end)
    return rows if team is None else rows.filter(team=team)


# --- Daily cost per team, stacked by model ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TeamDailyCost:
    team_slug: str
    days: list[date]
    # Model -> cost per day (aligned with `days`); models by total cost, largest first.
    by_model: dict[str, list[Decimal]]
    total: Decimal


def daily_cost(*, period: Period, team: Team | None = None) -> list[TeamDailyCost]:
    """One entry per team with usage in the period, the most expensive team first."""
    days = period.days
    index = {day: n for n, day in enumerate(days)}
    grid: dict[str, dict[str, list[Decimal]]] = defaultdict(dict)
    sums = (
        _rows(period, team)
        .values("team_slug", "model", "day")
        .annotate(cost=Sum("cost_usd"))
        .order_by()
    )
    for row in sums:
        per_day = grid[row["team_slug"]].setdefault(row["model"], [ZERO] * len(days))
        per_day[index[row["day"]]] += row["cost"] or ZERO
    result = []
    for slug, models in grid.items():
        ordered = dict(sorted(models.items(), key=lambda item: (-sum(item[1]), item[0])))
        total = sum((sum(costs) for costs in ordered.values()), ZERO)
        result.append(TeamDailyCost(slug, days, ordered, total))
    return sorted(result, key=lambda t: (-t.total, t.team_slug))


# --- Latency trend: p50 and p95 from merged histograms -------------------------------------------
def merge_histograms(histograms) -> list[int]:
    """Bucket-wise sum. Counts add across rows because every row uses the same buckets."""
    merged = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for hist in histograms:
        for n, count in enumerate(hist[: len(merged)]):
            merged[n] += int(count)
    return merged


def histogram_percentile(hist: list[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of a LATENCY_BUCKETS_MS histogram, None when empty.

    The rank falls in one bucket; within it, requests are assumed spread evenly between the
    bucket's bounds (linear interpolation, as Prometheus' histogram_quantile does). The
    open-ended last bucket has no upper bound, so a rank there reads as its lower bound.
    """
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for n, count in enumerate(hist):
        if count and seen + count >= rank:
            lower = LATENCY_BUCKETS_MS[n - 1] if n else 0.0
            if n >= len(LATENCY_BUCKETS_MS):
                return float(lower)
            upper = LATENCY_BUCKETS_MS[n]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])


@dataclass(frozen=True, slots=True)
class LatencyDay:
    day: date
    requests: int  # requests counted in the histograms
    p50_ms: float | None
    p95_ms: float | None


def latency_trend(*, period: Period, team: Team | None = None) -> list[LatencyDay]:
    """p50 and p95 per day across every row of the day (all models, keys, teams in scope).

    Percentiles do not average, so each day's rows' histograms are merged first and the
    percentiles read from the merged counts."""
    by_day: dict[date, list] = defaultdict(list)
    for day, hist in _rows(period, team).values_list("day", "latency_hist"):
        if hist:
            by_day[day].append(hist)
    result = []
    for day in period.days:
        merged = merge_histograms(by_day.get(day, ()))
        result.append(
            LatencyDay(
                day,
                sum(merged),
                histogram_percentile(merged, 0.50),
                histogram_percentile(merged, 0.95),
            )
        )
    return result


# --- Error rates by type --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ErrorRates:
    days: list[date]
    requests: list[int]
    errors: list[int]
    # Error type -> errors of that type per day; types by total count, largest first.
    by_type: dict[str, list[int]]

    def rate(self, counts: list[int]) -> list[float | None]:
        """Errors / requests per day; None on a day without requests (no rate, not 0 %)."""
        return [c / r if r else None for c, r in zip(counts, self.requests, strict=True)]


def error_rates(*, period: Period, team: Team | None = None) -> ErrorRates:
    days = period.days
    index = {day: n for n, day in enumerate(days)}
    requests = [0] * len(days)
    errors = [0] * len(days)
    by_type: dict[str, list[int]] = {}
    for day, reqs, errs, types in _rows(period, team).values_list(
        "day", "requests", "errors", "errors_by_type"
    ):
        n = index[day]
        requests[n] += reqs
        errors[n] += errs
        for kind, count in (types or {}).items():
            by_type.setdefault(str(kind), [0] * len(days))[n] += int(count)
    ordered = dict(sorted(by_type.items(), key=lambda item: (-sum(item[1]), item[0])))
    return ErrorRates(days, requests, errors, ordered)


# --- Top keys, projects and use cases by cost --------------------------------------------------
@dataclass(frozen=True, slots=True)
class TopRow:
    label: str
    team_slug: str
    requests: int
    cost: Decimal


def _top(period: Period, team: Team | None, field: str, limit: int) -> list[dict]:
    return list(
        _rows(period, team)
        .values("team_slug", field)
        .annotate(cost=Sum("cost_usd"), reqs=Sum("requests"))
        .order_by("-cost", "team_slug", field)[:limit]
    )


def top_keys(*, period: Period, team: Team | None = None, limit: int = TOP_LIMIT) -> list[TopRow]:
    rows = _top(period, team, "api_key", limit)
    names = dict(
        ApiKey.objects.filter(pk__in=[r["api_key"] for r in rows if r["api_key"]]).values_list(
            "pk", "name"
        )
    )
    prefixes = dict(
        _rows(period, team)
        .filter(api_key__in=[r["api_key"] for r in rows])
        .values_list("api_key", "key_prefix")
        .distinct()
    )
    result = []
    for r in rows:
        key_id = r["api_key"]
        prefix = prefixes.get(key_id, "")
        # A deleted key keeps its prefix in the rollup, so the row stays recognisable.
        name = names.get(key_id, "(deleted key)" if key_id else "(no key)")
        label = f"{name} ({prefix}…)" if prefix else name
        result.append(TopRow(label, r["team_slug"], r["reqs"] or 0, r["cost"] or ZERO))
    return result


def top_projects(
    *, period: Period, team: Team | None = None, limit: int = TOP_LIMIT
) -> list[TopRow]:
    rows = _top(period, team, "project", limit)
    names = dict(
        Project.objects.filter(pk__in=[r["project"] for r in rows if r["project"]]).values_list(
            "pk", "slug"
        )
    )
    return [
        TopRow(
            names.get(r["project"], "(deleted project)" if r["project"] else "(no project)"),
            r["team_slug"],
            r["reqs"] or 0,
            r["cost"] or ZERO,
        )
        for r in rows
    ]


def top_use_cases(
    *, period: Period, team: Team | None = None, limit: int = TOP_LIMIT
) -> list[TopRow]:
    return [
        TopRow(r["use_case"] or "(untagged)", r["team_slug"], r["reqs"] or 0, r["cost"] or ZERO)
        for r in _top(period, team, "use_case", limit)
    ]


# --- Budget burn-down -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BurnDown:
    month: date  # its first day
    days: list[date]  # every day of the month
    # Cumulative spend at the end of each day; None for days still to come.
    cumulative: list[Decimal | None]
    budget: Decimal | None  # the team's monthly budget; None: it has none
    # Where spend would be spread evenly over the month to end exactly at the budget.
    ideal: list[Decimal] | None

    @property
    def spent(self) -> Decimal:
        return next((v for v in reversed(self.cumulative) if v is not None), ZERO)


def burn_down(*, team: Team, month: date, today: date | None = None) -> BurnDown:
    """The team's spend through `month` (the month of the given date), day by day, against
    its team-level monthly budget. Days are UTC days, as the rollups are; a budget period in
    another timezone is off by that offset at the month's ends."""
    today = today or timezone.now().date()
    first = month.replace(day=1)
    length = calendar.monthrange(first.year, first.month)[1]
    days = [first + timedelta(n) for n in range(length)]
    per_day = dict(
        DailyUsage.objects.filter(team=team, day__gte=days[0], day__lte=days[-1])
        .values("day")
        .annotate(cost=Sum("cost_usd"))
        .order_by()
        .values_list("day", "cost")
    )
    running = ZERO
    cumulative: list[Decimal | None] = []
    for day in days:
        running += per_day.get(day) or ZERO
        cumulative.append(running if day <= today else None)
    budget = Policy.objects.filter(team=team).values_list("monthly_budget_usd", flat=True).first()
    ideal = None if budget is None else [budget * (n + 1) / length for n in range(length)]
    return BurnDown(first, days, cumulative, budget, ideal)

"""One UTC day of usage records summed into DailyUsage rows (billing/rollups.py stores them).

Postgres does the whole sum in two grouped queries (a day of a million rows never reaches
Python): totals, exact latency percentiles (percentile_cont) and histogram counts in one, errors
by type in the other. SQLite, the embedded default's database, has no percentile_cont and stores
decimals as floats, so there the day's rows are read and summed in Python, with the same
interpolation Postgres uses.
"""

import math
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Aggregate, Count, F, FloatField, Max, Q, Sum, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Left

from .models import LATENCY_BUCKETS_MS, UsageRecord

# What one DailyUsage row is keyed by (besides the day), as usage record columns.
GROUP_FIELDS = (
    "team_id",
    "project_id",
    "api_key_id",
    "requested_model",
    "provider_name",
    "use_case",
)
PERCENTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}
USE_CASE_MAX = 64  # DailyUsage.use_case


class PercentileCont(Aggregate):
    """Postgres' exact, interpolated percentile of a group: percentile_cont(f) WITHIN GROUP."""

    function = "percentile_cont"
    template = "%(function)s(%%s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float) -> None:
        self.fraction = float(fraction)
        super().__init__(expression)

    def as_sql(self, compiler, connection, **extra):
        sql, params = super().as_sql(compiler, connection, **extra)
        return sql, (self.fraction, *params)  # the fraction's %s comes first


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def bucket_index(latency_ms: float) -> int:
    """The histogram bucket of a latency: the first upper bound it does not exceed, or the
    open-ended last bucket."""
    for index, bound in enumerate(LATENCY_BUCKETS_MS):
        if latency_ms <= bound:
            return index
    return len(LATENCY_BUCKETS_MS)


def percentile_cont(ordered: list[float], fraction: float) -> float:
    """percentile_cont as Postgres computes it (same steps, so the same float)."""
    if not ordered:
        return 0.0
    row = 1 + fraction * (len(ordered) - 1)
    lower, upper = math.floor(row), math.ceil(row)
    first = ordered[lower - 1]
    if lower == upper:
        return first
    return first + (ordered[upper - 1] - first) * (row - lower)


def error_name(error_type: str, status_code: int) -> str:
    # Every failure the gateway settles names its type; a bare status is kept distinguishable.
    return error_type or f"http_{status_code}"


def _day_rows(day: date):
    start, end = day_bounds(day)
    use_case = Left(Coalesce(KeyTextTransform("use_case", "tags"), Value("")), USE_CASE_MAX)
    return (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(use_case=use_case)
        .order_by()
    )


def _hist_counts() -> dict:
    counts, lower = {}, None
    for index, bound in enumerate((*LATENCY_BUCKETS_MS, None)):
        within = Q()
        if lower is not None:
            within &= Q(latency_ms__gt=lower)
        if bound is not None:
            within &= Q(latency_ms__lte=bound)
        counts[f"h{index}"] = Count("id", filter=within)
        lower = bound
    return counts


def aggregate_sql(day: date) -> dict[tuple, dict]:
    """Group key -> DailyUsage field values, summed by Postgres."""
    rows = _day_rows(day).values(*GROUP_FIELDS)
    totals = rows.annotate(
        # Names copied on the rows; if a team or key was renamed that day, the greatest.
        org_max=Max("organization_id"),
        slug_max=Max("team_slug"),
        prefix_max=Max("key_prefix"),
        requests=Count("id"),
        errors=Count("id", filter=Q(status_code__gte=400)),
        input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"),
        cost_usd=Sum("cost_usd"),
        **{name: PercentileCont(F("latency_ms"), f) for name, f in PERCENTILES.items()},
        **_hist_counts(),
    )
    result: dict[tuple, dict] = {}
    buckets = len(LATENCY_BUCKETS_MS) + 1
    for row in totals:
        key = tuple(row[name] for name in GROUP_FIELDS)
        result[key] = {
            "organization_id": row["org_max"],
            "team_slug": row["slug_max"],
            "key_prefix": row["prefix_max"],
            "requests": row["requests"],
            "errors": row["errors"],
            "errors_by_type": {},
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "cost_usd": row["cost_usd"],
            **{name: row[name] for name in PERCENTILES},
            "latency_hist": [row[f"h{i}"] for i in range(buckets)],
        }
    failed = (
        rows.filter(status_code__gte=400)
        .values(*GROUP_FIELDS, "error_type", "status_code")
        .annotate(n=Count("id"))
    )
    for row in failed:
        errors = result[tuple(row[name] for name in GROUP_FIELDS)]["errors_by_type"]
        name = error_name(row["error_type"], row["status_code"])
        errors[name] = errors.get(name, 0) + row["n"]
    return result


def aggregate_python(day: date) -> dict[tuple, dict]:
    """The same as aggregate_sql, summed here: for SQLite (small, embedded databases)."""
    fields = (*GROUP_FIELDS, "organization_id", "team_slug", "key_prefix", "status_code")
    fields += ("error_type", "input_tokens", "output_tokens", "cost_usd", "latency_ms")
    latencies: dict[tuple, list[float]] = defaultdict(list)
    result: dict[tuple, dict] = {}
    for row in _day_rows(day).values(*fields).iterator(chunk_size=5000):
        key = tuple(row[name] for name in GROUP_FIELDS)
        entry = result.get(key)
        if entry is None:
            entry = result[key] = {
                "organization_id": None,
                "team_slug": "",
                "key_prefix": "",
                "requests": 0,
                "errors": 0,
                "errors_by_type": {},
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": Decimal(0),
                "latency_hist": [0] * (len(LATENCY_BUCKETS_MS) + 1),
            }
        for name in ("organization_id", "team_slug", "key_prefix"):  # Max(), as in SQL
            if row[name] is not None and (entry[name] is None or row[name] > entry[name]):
                entry[name] = row[name]
        entry["requests"] += 1
        if row["status_code"] >= 400:
            entry["errors"] += 1
            name = error_name(row["error_type"], row["status_code"])
            entry["errors_by_type"][name] = entry["errors_by_type"].get(name, 0) + 1
        entry["input_tokens"] += row["input_tokens"]
        entry["output_tokens"] += row["output_tokens"]
        entry["cost_usd"] += row["cost_usd"]
        entry["latency_hist"][bucket_index(row["latency_ms"])] += 1
        latencies[key].append(row["latency_ms"])
    for key, values in latencies.items():
        values.sort()
        for name, fraction in PERCENTILES.items():
            result[key][name] = percentile_cont(values, fraction)
    return result


def aggregate_day(day: date) -> dict[tuple, dict]:
    if connection.vendor == "postgresql":
        return aggregate_sql(day)
    return aggregate_python(day)

"""Reads of the API: spend and usage from the daily rollups (billing.DailyUsage, never the
request log, so a query costs the same whatever the traffic) and deployments' health."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import DecimalField, QuerySet, Sum
from django.db.models.functions import Coalesce

from billing.analytics import Period
from billing.models import DailyUsage
from routing.health_models import DeploymentHealth
from routing.models import Deployment
from tenants.models import ApiKey, Team

ZERO = Decimal(0)
# What usage can be grouped by: the API's name -> the rollup's column.
GROUPS = {
    "day": "day",
    "team": "team_slug",
    "project": "project__slug",
    "key": "key_prefix",
    "model": "model",
    "provider": "provider_name",
    "use_case": "use_case",
}


def team_spend(*, team: Team, period: Period) -> Decimal:
    total = (
        DailyUsage.objects.filter(team=team, day__gte=period.start, day__lte=period.end)
        .aggregate(cost=Sum("cost_usd"))
        .get("cost")
    )
    return total or ZERO


def keys_spend(*, keys: list[ApiKey], period: Period) -> dict[int, Decimal]:
    """Each key's spend in the period, in one query for a page of keys."""
    rows = (
        DailyUsage.objects.filter(
            api_key__in=[k.pk for k in keys], day__gte=period.start, day__lte=period.end
        )
        .values("api_key")
        .annotate(cost=Sum("cost_usd"))
        .order_by()
    )
    return {r["api_key"]: r["cost"] or ZERO for r in rows}


@dataclass(frozen=True)
class UsageFilter:
    period: Period
    teams: QuerySet[Team]  # already narrowed to the caller's scope
    project: str | None = None  # a project slug
    model: str | None = None
    use_case: str | None = None


def _selected(where: UsageFilter) -> QuerySet:
    rows = DailyUsage.objects.filter(
        day__gte=where.period.start, day__lte=where.period.end, team__in=where.teams
    )
    if where.project is not None:
        rows = rows.filter(project__slug=where.project)
    if where.model is not None:
        rows = rows.filter(model=where.model)
    if where.use_case is not None:
        rows = rows.filter(use_case=where.use_case)
    return rows


def _sums() -> dict:
    # Coalesce: an empty selection totals 0, not null.
    return {
        "requests_sum": Coalesce(Sum("requests"), 0),
        "errors_sum": Coalesce(Sum("errors"), 0),
        "input_tokens_sum": Coalesce(Sum("input_tokens"), 0),
        "output_tokens_sum": Coalesce(Sum("output_tokens"), 0),
        "cost_sum": Coalesce(Sum("cost_usd"), ZERO, output_field=DecimalField()),
    }


def usage_totals(*, where: UsageFilter, group_by: list[str]) -> QuerySet | list[dict]:
    """Totals over the filtered rollups, one row per combination of the `group_by` columns,
    the most expensive first; with no columns, one row for the whole selection."""
    rows = _selected(where)
    if not group_by:
        return [rows.aggregate(**_sums())]
    columns = [GROUPS[g] for g in group_by]
    return rows.values(*columns).annotate(**_sums()).order_by("-cost_sum", *columns)


def usage_grand_total(*, where: UsageFilter) -> dict:
    """{"requests", "cost"} over the whole selection (every page)."""
    total = _selected(where).aggregate(**_sums())
    return {"requests": total["requests_sum"], "cost": total["cost_sum"]}


@dataclass(frozen=True)
class DeploymentHealthRow:
    deployment: Deployment
    state: str  # closed | open | half_open | cooling | unknown
    usable: bool | None
    retry_in_s: float | None
    latency_ms: float | None
    consecutive_failures: int | None
    last_check_at: datetime | None
    last_ok_at: datetime | None
    last_error: str


def deployments_health(deployments: list[Deployment]) -> list[DeploymentHealthRow]:
    """The live breaker state (shared, in Redis) of each deployment, with its last check's row
    from Postgres. The store unreachable: state "unknown", the checks' rows still shown."""
    from routing import health  # the state store client; only where it is needed

    checks = {
        h.deployment_id: h for h in DeploymentHealth.objects.filter(deployment__in=deployments)
    }
    rows = []
    for d in deployments:
        live = health.current_sync(d.pk)
        check = checks.get(d.pk)
        rows.append(
            DeploymentHealthRow(
                deployment=d,
                state=live.state if live else "unknown",
                usable=live.usable if live else None,
                retry_in_s=live.retry_in_s if live else None,
                latency_ms=live.latency_ms if live else None,
                consecutive_failures=live.consecutive_failures if live else None,
                last_check_at=check.last_check_at if check else None,
                last_ok_at=check.last_ok_at if check else None,
                last_error=check.last_error if check else "",
            )
        )
    return rows

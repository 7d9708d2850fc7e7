"""Reads for the portal pages. Spend comes from the daily rollups (billing.DailyUsage), never
from the request log, so a page costs the same whatever the traffic."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Count, Sum
from django.utils import timezone

from billing.analytics import Period
from billing.models import DailyUsage
from policies.models import Policy
from tenants.models import ApiKey, Membership, Team
from tenants.roles import RANK

ZERO = Decimal(0)


def current_period(today: date | None = None) -> Period:
    """This month so far, in UTC days: the rollups' days (the budget's month follows the
    organization's timezone, so near a month's end the two can differ by that offset)."""
    return Period.current_month(today)


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: ApiKey
    requests: int
    spend: Decimal
    manageable: bool

    @property
    def status(self) -> str:
        if self.key.revoked_at is not None:
            return "revoked"
        if self.key.expires_at is not None:
            return "active" if self.key.expires_at > timezone.now() else "expired"
        return "active"


def key_rows(*, team: Team, period: Period, manageable) -> list[KeyRow]:
    """The team's keys, newest first, each with its requests and spend over the period.

    `manageable(key) -> bool` says whether the viewer may act on the key (it decides which
    buttons the row shows; the views check again on every POST)."""
    keys = list(ApiKey.objects.filter(team=team).select_related("owner", "project"))
    usage = {
        row["api_key"]: row
        for row in DailyUsage.objects.filter(
            team=team, api_key__in=[k.pk for k in keys], day__gte=period.start, day__lte=period.end
        )
        .values("api_key")
        .annotate(cost=Sum("cost_usd"), reqs=Sum("requests"))
        .order_by()
    }
    rows = []
    for key in keys:
        row = usage.get(key.pk, {})
        rows.append(KeyRow(key, row.get("reqs") or 0, row.get("cost") or ZERO, manageable(key)))
    # Active keys first: they are what a lead comes to manage.
    return sorted(rows, key=lambda r: r.status != "active")


@dataclass(frozen=True, slots=True)
class TeamSummary:
    budget: Decimal | None
    spend: Decimal
    requests: int
    errors: int
    active_keys: int
    members: int

    @property
    def budget_share(self) -> float | None:
        if not self.budget:
            return None
        return float(self.spend / self.budget)


def team_summary(*, team: Team, period: Period) -> TeamSummary:
    totals = DailyUsage.objects.filter(
        team=team, day__gte=period.start, day__lte=period.end
    ).aggregate(cost=Sum("cost_usd"), reqs=Sum("requests"), errs=Sum("errors"))
    policy = Policy.objects.filter(team=team).values("monthly_budget_usd").first()
    return TeamSummary(
        budget=policy["monthly_budget_usd"] if policy else None,
        spend=totals["cost"] or ZERO,
        requests=totals["reqs"] or 0,
        errors=totals["errs"] or 0,
        active_keys=ApiKey.objects.filter(team=team).active().count(),
        members=Membership.objects.filter(team=team).aggregate(n=Count("pk"))["n"],
    )


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None
    tpm: int | None
    budget: Decimal | None


def key_limits(key: ApiKey) -> Limits:
    policy = Policy.objects.filter(api_key=key).first()
    if policy is None:
        return Limits(None, None, None)
    return Limits(policy.rpm, policy.tpm, policy.monthly_budget_usd)


def team_limits(team: Team) -> Limits:
    """The team's own ceilings (its policy), which a key's limits may only narrow."""
    policy = Policy.objects.filter(team=team).first()
    if policy is None:
        return Limits(None, None, None)
    return Limits(policy.rpm, policy.tpm, policy.monthly_budget_usd)


def members(team: Team) -> list[Membership]:
    rows = list(Membership.objects.filter(team=team).select_related("user"))
    return sorted(rows, key=lambda m: (-RANK[m.role], m.user.get_username().casefold()))

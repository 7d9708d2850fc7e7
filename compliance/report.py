"""The compliance report's selectors: which providers were used in a period, by which teams,
under which agreements, and where the registry and the traffic disagree.

Traffic is read from billing.UsageRecord (one row per request that reached routing), grouped by
provider and team in the database. A period is whole calendar days in settings.TIME_ZONE,
`since` and `until` included.

Gaps are of two kinds:
- traffic without a valid agreement: requests sent to a provider at a time when the registry
  did not record a signed, unexpired agreement with it (none yet, not signed, expired,
  terminated, deleted). "At that time" is read from the agreement's history rows, so a renewal
  recorded today does not excuse last month's traffic, and a lapse that has since been fixed
  still shows for the days it lasted. For the teams that require hipaa (as of now), the same
  is computed for the agreement's BAA ("hipaa: BAA expired on ...", "hipaa: no BAA recorded").
  Only the agreement with the provider itself is read, not those of its sub-processors.
- agreements about to lapse: a signed agreement, or a BAA, whose expiry falls within
  GATEWAY_COMPLIANCE_EXPIRING_DAYS of today.
"""

import datetime
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from billing.models import UsageRecord
from policies.models import PRIVACY_ORDER, PrivacyMode
from policies.snapshot import policy_table_build
from routing.models import Provider
from tenants.models import Team

from .models import DataProcessingAgreement, RequirementSet
from .requirements import NAMES

Status = DataProcessingAgreement.Status


@dataclass(frozen=True)
class Gap:
    provider: str
    kind: str  # "traffic" | "expiring"
    detail: str  # "expired on 2026-10-01", "BAA expires on 2026-12-01 (in 3 days)"
    start: datetime.datetime | None = None  # traffic: the stretch of time without an agreement
    end: datetime.datetime | None = None
    requests: int = 0
    teams: tuple[tuple[str, int], ...] = ()  # (team slug, requests)


@dataclass
class ProviderRow:
    name: str
    requests: int
    teams: list[tuple[str, int]]  # (team slug, requests), most first
    agreement: DataProcessingAgreement | None  # the one with the provider itself, as of now
    sub_agreements: list[DataProcessingAgreement] = field(default_factory=list)
    uncovered_requests: int = 0  # of `requests`, sent without a valid agreement

    def standing(self, today: datetime.date) -> str:
        return self.agreement.standing(today) if self.agreement else "no agreement recorded"

    def baa_standing(self, today: datetime.date) -> str:
        return self.agreement.baa_standing(today) if self.agreement else "none"


@dataclass(frozen=True)
class TeamRow:
    slug: str
    organization: str
    privacy_mode: str
    requirements: tuple[str, ...]
    requests: int

    @property
    def full_content(self) -> bool:
        """Prompts and outputs kept in full for some of its keys at least."""
        return self.privacy_mode == PrivacyMode.FULL


@dataclass
class Report:
    since: datetime.date
    until: datetime.date
    today: datetime.date
    generated_at: datetime.datetime
    providers: list[ProviderRow]
    teams: list[TeamRow]
    gaps: list[Gap]


def _day_start(day: datetime.date) -> datetime.datetime:
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)


def _usage_by_provider(start, end) -> dict[str, list[tuple[str, int]]]:
    rows = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .exclude(provider_name="")  # refused before routing: no provider saw it
        .values_list("provider_name", "team_slug")
        .annotate(requests=Count("id"))
        .order_by()
    )
    found: dict[str, list[tuple[str, int]]] = {}
    for provider, team, requests in rows:
        found.setdefault(provider, []).append((team or "(no team)", requests))
    for teams in found.values():
        teams.sort(key=lambda t: (-t[1], t[0]))
    return found


# What a history row of an agreement grants: the DPA itself (every team's traffic), or the BAA
# (the traffic of teams that require hipaa). Each is (why it did not count, or None; the day it
# lapses), as compliance/models.py's dpa_valid_on and baa_valid_on read it.
def _dpa_term(version) -> tuple[str | None, datetime.date | None]:
    if version.history_type == "-":
        return "agreement deleted", None
    if version.status != Status.SIGNED:
        return f"agreement {Status(version.status).label.lower()}", None
    return None, version.expires_on


def _baa_term(version) -> tuple[str | None, datetime.date | None]:
    if version.history_type == "-":
        return "agreement deleted", None
    if version.status == Status.TERMINATED:
        return "agreement terminated", None
    if not version.baa:
        return "no BAA recorded", None
    return None, version.baa_expires_on


_TERMS = {"dpa": (_dpa_term, "no agreement recorded", "expired on"),
          "baa": (_baa_term, "no BAA recorded", "BAA expired on")}  # fmt: skip


def _uncovered(provider: Provider | None, start, end, term: str) -> list[tuple]:
    """The stretches of [start, end) when the provider's own agreement did not grant `term`,
    as (from, to, why), merged where adjacent with the same reason."""
    read, missing, expired = _TERMS[term]
    versions = []
    if provider is not None:
        versions = list(
            DataProcessingAgreement.history.filter(provider_id=provider.pk, sub_processor="")
            .filter(history_date__lt=end)
            .order_by("history_date", "history_id")
        )
    stretches = []  # (from, to, why-or-None)
    cursor = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    reason = missing
    for i, version in enumerate(versions):
        stretches.append((cursor, version.history_date, reason))
        until = versions[i + 1].history_date if i + 1 < len(versions) else None
        cursor = version.history_date
        reason, lapses_on = read(version)
        if reason is None and lapses_on is not None:
            lapse = max(cursor, _day_start(lapses_on))
            if until is None or lapse < until:
                stretches.append((cursor, lapse, None))
                cursor, reason = lapse, f"{expired} {lapses_on}"
    stretches.append((cursor, end, reason))
    merged: list[list] = []
    for begin, finish, why in stretches:
        begin, finish = max(begin, start), min(finish, end)
        if why is None or begin >= finish:
            continue
        if merged and merged[-1][1] == begin and merged[-1][2] == why:
            merged[-1][1] = finish
        else:
            merged.append([begin, finish, why])
    return [tuple(m) for m in merged]


def _traffic_gaps(
    name: str, provider: Provider | None, start, end, *, term: str = "dpa", teams=None
) -> list[Gap]:
    """Requests to the provider in the stretches it lacked `term`; only those of `teams` (slugs)
    when given."""
    gaps = []
    for begin, finish, why in _uncovered(provider, start, end, term):
        rows = UsageRecord.objects.filter(
            provider_name=name, created_at__gte=begin, created_at__lt=finish
        )
        if teams is not None:
            rows = rows.filter(team_slug__in=teams)
        rows = rows.values_list("team_slug").annotate(requests=Count("id")).order_by()
        found = sorted(((t or "(no team)", n) for t, n in rows), key=lambda t: (-t[1], t[0]))
        total = sum(n for _, n in found)
        if total:
            detail = why if term == "dpa" else f"hipaa: {why}"
            gaps.append(Gap(name, "traffic", detail, begin, finish, total, tuple(found)))
    return gaps


def _expiring(today: datetime.date) -> list[Gap]:
    horizon = today + datetime.timedelta(days=settings.GATEWAY_COMPLIANCE_EXPIRING_DAYS)
    found = []
    agreements = DataProcessingAgreement.objects.select_related("provider").filter(
        Q(status=Status.SIGNED, expires_on__gte=today, expires_on__lte=horizon)
        | Q(baa=True, baa_expires_on__gte=today, baa_expires_on__lte=horizon)
    )
    for a in agreements.exclude(status=Status.TERMINATED):
        dates = [("BAA", a.baa_expires_on)] if a.baa else []
        if a.status == Status.SIGNED:
            dates.append(("agreement", a.expires_on))
        for what, day in dates:
            if day is not None and today <= day <= horizon:
                days = (day - today).days
                detail = f"{what} expires on {day} (in {days} day{'s' if days != 1 else ''})"
                found.append((day, Gap(a.party, "expiring", detail)))
    return [gap for _, gap in sorted(found, key=lambda f: (f[0], f[1].provider))]


def _teams(usage: dict[str, list[tuple[str, int]]]) -> list[TeamRow]:
    requests: dict[str, int] = {}
    for teams in usage.values():
        for slug, n in teams:
            requests[slug] = requests.get(slug, 0) + n
    policies = policy_table_build()
    wanted: dict[tuple[str, int], list[str]] = {}
    for team_id, org_id, names in RequirementSet.objects.values_list(
        "team_id", "organization_id", "requirements"
    ):
        key = ("team", team_id) if team_id is not None else ("organization", org_id)
        wanted[key] = [n for n in names or () if n in NAMES]
    rows = []
    for team in Team.objects.select_related("organization").order_by("slug"):
        # The team's mode is the most private of its organization's and its own; a project or
        # key can only make it more private (policies/engine.py), never less.
        modes = [
            rules.privacy_mode
            for rules in (
                policies.org_rules.get(team.organization_id),
                policies.team_rules.get(team.pk),
            )
            if rules is not None and rules.privacy_mode in PRIVACY_ORDER
        ]
        mode = min(modes, key=PRIVACY_ORDER.index) if modes else PRIVACY_ORDER[0]
        names = set(wanted.get(("team", team.pk), ())) | set(
            wanted.get(("organization", team.organization_id), ())
        )
        rows.append(
            TeamRow(
                slug=team.slug,
                organization=team.organization.slug,
                privacy_mode=mode,
                requirements=tuple(n for n in NAMES if n in names),
                requests=requests.pop(team.slug, 0),
            )
        )
    return rows


def compliance_report(
    *, since: datetime.date, until: datetime.date, today: datetime.date | None = None
) -> Report:
    """The report of [since, until] (whole days, both included), with standings as of `today`."""
    if until < since:
        raise ValueError("the period ends before it starts")
    today = today or timezone.localdate()
    start, end = _day_start(since), _day_start(until + datetime.timedelta(days=1))
    usage = _usage_by_provider(start, end)
    known = {p.name: p for p in Provider.objects.filter(name__in=usage)}
    agreements: dict[int, list[DataProcessingAgreement]] = {}
    for a in DataProcessingAgreement.objects.filter(provider__in=known.values()):
        agreements.setdefault(a.provider_id, []).append(a)
    teams = _teams(usage)
    hipaa_teams = {t.slug for t in teams if "hipaa" in t.requirements}
    providers, gaps = [], []
    for name in sorted(usage):
        provider = known.get(name)
        own = agreements.get(provider.pk, []) if provider else []
        traffic = _traffic_gaps(name, provider, start, end)
        gaps += traffic
        if hipaa_teams & {slug for slug, _ in usage[name]}:
            gaps += _traffic_gaps(name, provider, start, end, term="baa", teams=hipaa_teams)
        providers.append(
            ProviderRow(
                name=name,
                requests=sum(n for _, n in usage[name]),
                teams=usage[name],
                agreement=next((a for a in own if a.sub_processor == ""), None),
                sub_agreements=sorted(
                    (a for a in own if a.sub_processor), key=lambda a: a.sub_processor
                ),
                uncovered_requests=sum(g.requests for g in traffic),
            )
        )
    return Report(
        since=since,
        until=until,
        today=today,
        generated_at=timezone.now(),
        providers=providers,
        teams=teams,
        gaps=gaps + _expiring(today),
    )

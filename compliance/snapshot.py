"""The compliance table: what each provider's agreements allow, and what each team requires,
as a per-process snapshot the hot path reads without touching the database.

Built like the routing table (infra/snapshot.py) and on its clock, GATEWAY_ROUTING_CACHE_TTL_S:
a change in the registry is obeyed everywhere within that time (at once in the process that
saved it, whose copy is dropped on commit). An agreement's dates are turned into epoch
timestamps at build, so an expiry also takes effect the moment it passes, with no rebuild:
per request, a route costs one timestamp comparison per requirement.

What a provider is granted is the weakest of its agreements: the one with the provider itself
(sub_processor "") and every sub-processor agreement recorded for it. A provider with no
agreement of its own is granted nothing. A team without requirements is never filtered: the
table hands it no gate at all.
"""

import datetime
import logging
import math
import time
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from infra.snapshot import SnapshotCache, SnapshotUnavailable, TablesFingerprint
from routing.models import Provider
from routing.regions import PARENT, within
from routing.selectors import Route
from tenants.selectors import KeyPrincipal

from .models import DataProcessingAgreement, RequirementSet
from .requirements import GDPR_NO_SCC_REGIONS, MISSING, NAMES

log = logging.getLogger(__name__)

NEVER = 0.0  # a grant that never held (or had lapsed when the table was built)
FOREVER = math.inf  # no expiry date
_NONE: frozenset[str] = frozenset()
_MEMO_MAX = 10_000
BASIS_MAX = 200  # billing.UsageRecord.compliance_basis


def day_start(day: datetime.date | None) -> float:
    """The epoch time a date-bounded grant ends: the start of `day` in settings.TIME_ZONE."""
    if day is None:
        return FOREVER
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz).timestamp()


@dataclass(frozen=True, slots=True)
class Terms:
    """What one provider's agreements grant, each as the epoch time it holds until (NEVER: not
    granted). `regions` are each agreement's covered regions (empty: anywhere)."""

    agreement_ids: tuple[int, ...]
    provider: str
    hipaa: float = NEVER
    dpa: float = NEVER
    scc: float = NEVER
    zdr: float = NEVER
    no_training: float = NEVER
    regions: tuple[frozenset[str], ...] = ()

    def until(self, requirement: str, residency: str) -> float:
        if requirement != "gdpr":
            return getattr(self, requirement)
        for covered in self.regions:
            if covered and not within(residency, covered):
                return NEVER
        local = residency in GDPR_NO_SCC_REGIONS or PARENT.get(residency) in GDPR_NO_SCC_REGIONS
        return self.dpa if local else self.scc

    def basis(self, requirements: Iterable[str]) -> str:
        ids = "+".join(str(i) for i in self.agreement_ids)
        return f"dpa:{ids} {self.provider} ({', '.join(requirements)})"[:BASIS_MAX]


def terms_of(agreements: Sequence[DataProcessingAgreement], today: datetime.date) -> Terms | None:
    """A provider's terms from all its agreements (None: it has none of its own)."""
    if not any(a.sub_processor == "" for a in agreements):
        return None
    grants: dict[str, float] = dict.fromkeys(("hipaa", "dpa", "scc", "zdr", "no_training"), FOREVER)
    for a in agreements:
        dpa = day_start(a.expires_on) if a.dpa_valid_on(today) else NEVER
        mine = {
            "hipaa": day_start(a.baa_expires_on) if a.baa_valid_on(today) else NEVER,
            "dpa": dpa,
            "scc": dpa if a.scc else NEVER,
            "zdr": dpa if a.zero_data_retention else NEVER,
            "no_training": dpa if a.training_opt_out else NEVER,
        }
        for name, until in mine.items():
            grants[name] = min(grants[name], until)
    ordered = sorted(agreements, key=lambda a: (a.sub_processor != "", a.sub_processor))
    return Terms(
        agreement_ids=tuple(a.pk for a in ordered),
        provider=ordered[0].provider.name,
        regions=tuple(frozenset(a.regions or ()) for a in ordered),
        **grants,
    )


class Gate:
    """One team's requirements applied to routes: which may serve it, and on what basis."""

    __slots__ = ("_copies", "from_organization", "requirements", "team", "terms")

    def __init__(
        self,
        requirements: tuple[str, ...],
        team: str,
        terms: Mapping[int, Terms],
        from_organization: frozenset[str] = _NONE,
    ) -> None:
        self.requirements = requirements  # in NAMES order
        self.team = team
        self.terms = terms
        self.from_organization = from_organization  # those set by the organization alone
        # id(route) -> (route, its copy carrying the basis): one copy per route per table.
        self._copies: dict[int, tuple[Route, Route]] = {}

    def _holds(self, route: Route, requirement: str, now: float) -> bool:
        terms = self.terms.get(route.provider_id)
        return terms is not None and now < terms.until(requirement, route.residency)

    def narrow(self, routes: Sequence[Route], now: float | None = None) -> tuple[Route, ...]:
        """The routes that meet every requirement now, each carrying its compliance basis."""
        now = time.time() if now is None else now
        kept = []
        for route in routes:
            if all(self._holds(route, r, now) for r in self.requirements):
                kept.append(self._with_basis(route))
        return tuple(kept)

    def _with_basis(self, route: Route) -> Route:
        found = self._copies.get(id(route))
        if found is not None and found[0] is route:
            return found[1]
        copy = replace(
            route, compliance_basis=self.terms[route.provider_id].basis(self.requirements)
        )
        self._copies[id(route)] = (route, copy)
        return copy

    def denial(self, model: str, routes: Sequence[Route], now: float | None = None) -> str:
        """Why no route of `model` may serve this team: the first requirement none meets."""
        now = time.time() if now is None else now
        for requirement in self.requirements:
            if not any(self._holds(r, requirement, now) for r in routes):
                by = " (set by its organization)" if requirement in self.from_organization else ""
                return (
                    f"team '{self.team}' requires {requirement}{by}: no deployment of "
                    f"'{model}' has a provider with {MISSING[requirement]}"
                )
        listed = ", ".join(self.requirements)
        return (
            f"team '{self.team}' requires {listed}: no deployment of '{model}' has a provider "
            "that meets them all"
        )


@dataclass(frozen=True, slots=True)
class ComplianceTable:
    built_at: float  # time.monotonic() at the start of the build
    terms: Mapping[int, Terms] = field(default_factory=dict)  # provider id ->
    team_requirements: Mapping[int, frozenset[str]] = field(default_factory=dict)
    org_requirements: Mapping[int, frozenset[str]] = field(default_factory=dict)
    _gates: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def gate(self, principal: KeyPrincipal) -> Gate | None:
        """The caller's team's gate; None when neither it nor its organization requires
        anything (the common case costs two dict lookups)."""
        team = self.team_requirements.get(principal.team_id, _NONE)
        org = self.org_requirements.get(principal.org_id, _NONE)
        if not team and not org:
            return None
        memo_key = (principal.team_id, principal.org_id, principal.team_slug)
        found = self._gates.get(memo_key)
        if found is None:
            wanted = team | org
            found = Gate(
                tuple(n for n in NAMES if n in wanted),
                principal.team_slug,
                self.terms,
                from_organization=org - team,
            )
            if len(self._gates) >= _MEMO_MAX:
                self._gates.clear()
            self._gates[memo_key] = found
        return found

    def requirements_of(self, team_id: int | None, org_id: int | None) -> tuple[str, ...]:
        wanted = self.team_requirements.get(team_id, _NONE) | self.org_requirements.get(
            org_id, _NONE
        )
        return tuple(n for n in NAMES if n in wanted)


def compliance_table_build() -> ComplianceTable:
    started = time.monotonic()
    today = timezone.localdate()
    by_provider: dict[int, list[DataProcessingAgreement]] = {}
    for agreement in DataProcessingAgreement.objects.select_related("provider"):
        by_provider.setdefault(agreement.provider_id, []).append(agreement)
    terms = {}
    for provider_id, agreements in by_provider.items():
        found = terms_of(agreements, today)
        if found is not None:
            terms[provider_id] = found
    teams: dict[int, frozenset[str]] = {}
    orgs: dict[int, frozenset[str]] = {}
    for team_id, org_id, names in RequirementSet.objects.values_list(
        "team_id", "organization_id", "requirements"
    ):
        # Unknown names (a row written around the validation) require nothing extra.
        wanted = frozenset(n for n in names or () if n in NAMES)
        if team_id is not None:
            teams[team_id] = wanted
        elif org_id is not None:
            orgs[org_id] = wanted
    return ComplianceTable(
        built_at=started, terms=terms, team_requirements=teams, org_requirements=orgs
    )


class ComplianceTableUnavailable(SnapshotUnavailable):
    """No compliance table yet, and building one failed moments ago: requests get a 503
    rather than be routed without their requirements."""


compliance_table_cache: SnapshotCache[ComplianceTable] = SnapshotCache(
    "compliance table",
    compliance_table_build,
    lambda: settings.GATEWAY_ROUTING_CACHE_TTL_S,
    unavailable=ComplianceTableUnavailable,
    logger=log,
    # Unchanged tables on the same day: no rebuild (infra/snapshot.py). Agreements and BAAs
    # are valid by date, so a new day rebuilds.
    fingerprint=TablesFingerprint(
        DataProcessingAgreement, RequirementSet, Provider, extra=timezone.localdate
    ),
)


def invalidate_on_commit(**_kwargs) -> None:
    """A signal receiver: drop this process's table once the change is committed."""
    transaction.on_commit(compliance_table_cache.invalidate)

"""The routing table: a read-only snapshot of enabled deployments, cached per process.

The hot path never queries the database for routing; it reads this snapshot. A change made in
the database is served within GATEWAY_ROUTING_CACHE_TTL_S everywhere: the table is rebuilt in
the background once half of that has passed, and a request that finds it older than the TTL
waits for the rebuild (under steady traffic, none does).

One bad row never costs everyone the table: a provider whose credential cannot be decrypted, or
that cannot be routed to, is left out and reported (log, /readyz, the admin's provider list). A
failed rebuild keeps the previous table in service and is retried after a short backoff.
"""

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
from django.conf import settings

from infra.snapshot import SnapshotCache, SnapshotUnavailable, TablesFingerprint

from .capabilities import DEFAULT as DEFAULT_CAPABILITIES
from .capabilities import Capabilities
from .credentials import EMPTY, Credentials
from .kinds import BY_VALUE, needs_api_base, needs_region, serves_embeddings
from .models import (
    DEFAULT_ATTEMPT_TIMEOUT_S,
    DEFAULT_FIRST_BYTE_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    Deployment,
    ModelGroup,
    Provider,
    RoutingRule,
    api_base_problem,
)
from .regions import residency_of

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    deployment_id: int
    model_name: str
    upstream_model: str
    mode: str
    provider_id: int
    provider_name: str
    provider_kind: str
    api_base: str
    # Decrypted, in memory only; excluded from repr below (and its own repr names parts only).
    credentials: Credentials = EMPTY
    # As configured (a bedrock deployment signs for it), and its vocabulary name
    # (routing/regions.py; "" for none or an unknown value), which policies match.
    region: str = ""
    residency: str = ""
    weight: int = 1
    priority: int = 0
    input_cost_per_mtok: Decimal = Decimal(0)
    output_cost_per_mtok: Decimal = Decimal(0)
    # What the deployment can do: the hot path drops candidates that lack what a request needs.
    capabilities: Capabilities = DEFAULT_CAPABILITIES
    # Effective timeouts (the deployment's override, else the provider's), in seconds.
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = DEFAULT_FIRST_BYTE_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    attempt_timeout_s: float = DEFAULT_ATTEMPT_TIMEOUT_S
    # This route's secrets as they may appear in upstream text (see redact).
    secret_forms: tuple[bytes, ...] = ()
    # The agreements that let this route serve the request's compliance requirements, set on a
    # per-request copy by the compliance filter (compliance/snapshot.py); "" in the table.
    compliance_basis: str = ""

    def __repr__(self) -> str:  # never print the credential
        return f"Route({self.model_name} -> {self.provider_name}/{self.upstream_model})"

    def redact(self, data: bytes) -> bytes:
        """Upstream bytes with this route's secrets replaced: a server that echoes the
        Authorization header in an error must not hand the credential to the caller."""
        for secret in self.secret_forms:
            if secret in data:
                data = data.replace(secret, REDACTED)
        return data

    def redact_text(self, text: str) -> str:
        return self.redact(text.encode()).decode() if self.secret_forms else text

    @property
    def label(self) -> str:
        return f"{self.provider_name}/{self.upstream_model}"

    @property
    def api_key(self) -> str:
        return self.credentials.get("api_key", "")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A provider (or one of its deployments) left out of the table, and why."""

    provider: str
    reason: str
    deployment: str = ""

    def as_dict(self) -> dict[str, str]:
        found = {"provider": self.provider, "reason": self.reason}
        if self.deployment:
            found["deployment"] = self.deployment
        return found


@dataclass(frozen=True, slots=True)
class Group:
    """A public model name's strategy and fallback groups (routing/models.py ModelGroup)."""

    strategy: str = "cheapest"
    fallbacks: tuple[str, ...] = ()
    context_fallbacks: tuple[str, ...] = ()


DEFAULT_GROUP = Group()


@dataclass(frozen=True, slots=True)
class Rule:
    """Requests for `model` ("*": any) from `team_id`, or with route tag `tag`, go to `group`."""

    model: str
    group: str
    team_id: int | None = None
    tag: str = ""

    def matches(self, model: str, team_id: int | None, tag: str) -> bool:
        if self.model != "*" and self.model != model:
            return False
        if self.team_id is not None:
            return self.team_id == team_id
        return bool(tag) and self.tag == tag


@dataclass(frozen=True, slots=True)
class RoutingTable:
    # (mode, public model name) -> routes, cheapest first.
    routes: dict[tuple[str, str], tuple[Route, ...]]
    # When the snapshot was taken (time.monotonic(), at the start of the build).
    built_at: float
    skipped: tuple[Skipped, ...] = ()
    # (mode, name) -> its group; a name without one has DEFAULT_GROUP.
    groups: dict[tuple[str, str], Group] = field(default_factory=dict)
    # Enabled routing rules, in the order they are tried.
    rules: tuple[Rule, ...] = ()

    def candidates(self, mode: str, model: str) -> tuple[Route, ...]:
        return self.routes.get((mode, model), ())

    def group(self, mode: str, model: str) -> Group:
        return self.groups.get((mode, model), DEFAULT_GROUP)

    def routed_model(self, model: str, team_id: int | None, tag: str) -> str:
        """The group a request for `model` goes to: the first matching rule's, else `model`."""
        for rule in self.rules:
            if rule.matches(model, team_id, tag):
                return rule.group
        return model

    def model_names(self) -> set[str]:
        return {model for _, model in self.routes}

    def models_for_mode(self, mode: str) -> list[str]:
        return sorted(model for m, model in self.routes if m == mode)


REDACTED = b"[REDACTED]"
# Shorter "credentials" are placeholders ("EMPTY", "none" for a local vLLM): replacing those
# words in model output would garble answers and protect nothing.
_MIN_SECRET_LEN = 8


def _secret_forms(*secrets: str) -> tuple[bytes, ...]:
    forms: list[bytes] = []
    for secret in secrets:
        if len(secret) < _MIN_SECRET_LEN:
            continue
        raw = secret.encode()
        # Inside a JSON string a secret may be escaped ("/" as "\/" by some servers).
        escaped = orjson.dumps(secret)[1:-1]
        for form in (raw, escaped, escaped.replace(b"/", b"\\/")):
            if form not in forms:
                forms.append(form)
    return tuple(forms)


def _first_set(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def _check_provider(provider: Provider) -> tuple[Credentials, str | None]:
    """(the decrypted credential, None) or (EMPTY, why the provider cannot be routed to)."""
    kind = BY_VALUE.get(provider.kind)
    if kind is None:
        return EMPTY, f"unknown kind {provider.kind!r}"
    if needs_api_base(provider.kind) and not provider.api_base:
        return EMPTY, "no api_base"
    # Also enforced on save (Provider.clean); a row written another way is caught here.
    insecure = api_base_problem(provider.api_base, provider.allow_insecure_http)
    if insecure:
        return EMPTY, insecure
    try:
        credentials = provider.get_credentials()
    except ValueError:
        return EMPTY, "credential cannot be decrypted"
    # Checked on save too (loadconfig, the admin); a kind changed another way is caught here. A
    # part the kind does not use is left alone: it harms nothing.
    missing = kind.credentials.missing(set(credentials))
    if missing:
        return EMPTY, f"credential lacks {', '.join(missing)} (needed by {kind.value} providers)"
    return credentials, None


def provider_problem(provider: Provider) -> str | None:
    """Why the routing table leaves this provider out, or None (the admin shows it)."""
    return _check_provider(provider)[1]


def _route(d: Deployment, p: Provider, credentials: Credentials) -> Route:
    return Route(
        deployment_id=d.pk,
        model_name=d.model_name,
        upstream_model=d.upstream_model,
        mode=d.mode,
        provider_id=p.pk,
        provider_name=p.name,
        provider_kind=p.kind,
        api_base=p.api_base,
        credentials=credentials,
        region=d.effective_region,
        residency=residency_of(d.effective_region) or "",
        weight=d.weight,
        priority=d.priority,
        input_cost_per_mtok=d.input_cost_per_mtok,
        output_cost_per_mtok=d.output_cost_per_mtok,
        capabilities=d.capabilities,
        connect_timeout_s=_first_set(
            d.connect_timeout_s, p.connect_timeout_s, settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S
        ),
        first_byte_timeout_s=_first_set(d.first_byte_timeout_s, p.first_byte_timeout_s),
        idle_timeout_s=_first_set(d.idle_timeout_s, p.idle_timeout_s),
        attempt_timeout_s=_first_set(d.attempt_timeout_s, p.attempt_timeout_s),
        secret_forms=_secret_forms(*credentials.secret_values()),
    )


def routing_table_build() -> RoutingTable:
    started = time.monotonic()
    deployments = Deployment.objects.filter(enabled=True, provider__enabled=True).select_related(
        "provider"
    )
    grouped: dict[tuple[str, str], list[Route]] = {}
    providers: dict[int, tuple[Credentials, str | None]] = {}
    skipped: list[Skipped] = []
    for d in deployments:
        p = d.provider
        if p.pk not in providers:
            providers[p.pk] = _check_provider(p)
            if providers[p.pk][1] is not None:
                skipped.append(Skipped(provider=p.name, reason=providers[p.pk][1]))
        credentials, problem = providers[p.pk]
        if problem is not None:
            continue
        if needs_region(p.kind) and not d.effective_region:
            # Signed for a region (AWS): without one there is no endpoint and no signature.
            label = f"{d.model_name} -> {d.upstream_model}"
            reason = f"no region (needed by {p.kind} deployments: set it here or on the provider)"
            skipped.append(Skipped(provider=p.name, reason=reason, deployment=label))
            continue
        if d.mode == "embedding" and not serves_embeddings(p.kind):
            label = f"{d.model_name} -> {d.upstream_model}"
            reason = f"{p.kind} providers have no embeddings API"
            skipped.append(Skipped(provider=p.name, reason=reason, deployment=label))
            continue
        try:
            route = _route(d, p, credentials)
        except Exception as exc:  # one unusable row, never the whole table
            label = f"{d.model_name} -> {d.upstream_model}"
            reason = f"invalid deployment ({type(exc).__name__})"
            skipped.append(Skipped(provider=p.name, reason=reason, deployment=label))
            continue
        grouped.setdefault((d.mode, d.model_name), []).append(route)
    # Cheapest first: the order when nothing else is known (routing/strategies.py reorders
    # per request).
    routes = {
        key: tuple(
            sorted(
                rs,
                key=lambda r: (r.input_cost_per_mtok + r.output_cost_per_mtok, r.deployment_id),
            )
        )
        for key, rs in grouped.items()
    }
    return RoutingTable(
        routes=routes,
        built_at=started,
        skipped=tuple(skipped),
        groups=_groups(),
        rules=_rules(),
    )


def _groups() -> dict[tuple[str, str], Group]:
    return {
        (g.mode, g.name): Group(
            strategy=g.strategy,
            fallbacks=tuple(g.fallbacks or ()),
            context_fallbacks=tuple(g.context_fallbacks or ()),
        )
        for g in ModelGroup.objects.all()
    }


def _rules() -> tuple[Rule, ...]:
    return tuple(
        Rule(model=r.model, group=r.group, team_id=r.team_id, tag=r.tag)
        for r in RoutingRule.objects.filter(enabled=True).order_by("position", "id")
    )


class RoutingTableUnavailable(SnapshotUnavailable):
    """There is no routing table yet and building one failed moments ago (retried after a
    backoff). A DatabaseError: the database is what a build depends on."""


class _RoutingTableCache(SnapshotCache[RoutingTable]):
    """The process's routing table (infra/snapshot.py: served, refreshed ahead of expiry, kept
    on a failed rebuild). Also reports providers as they are left out and routed to again."""

    def installed(self, old: RoutingTable | None, new: RoutingTable) -> None:
        before = set(old.skipped) if old is not None else set()
        for item in new.skipped:
            if item not in before:
                where = f"{item.provider} ({item.deployment})" if item.deployment else item.provider
                log.warning("routing table: left out %s: %s", where, item.reason)
        for item in before - set(new.skipped):
            log.info("routing table: %s is routed to again", item.provider)

    def status(self) -> dict:
        """What /readyz reports: the table's age, what it leaves out, failed rebuilds."""
        table = self.current
        return {
            **super().status(),
            "skipped": [] if table is None else [s.as_dict() for s in table.skipped],
        }


routing_table_cache = _RoutingTableCache(
    "routing table",
    routing_table_build,
    lambda: settings.GATEWAY_ROUTING_CACHE_TTL_S,
    unavailable=RoutingTableUnavailable,
    logger=log,
    # Unchanged tables: no rebuild (infra/snapshot.py). The one setting the build reads, too.
    fingerprint=TablesFingerprint(
        Deployment,
        Provider,
        ModelGroup,
        RoutingRule,
        extra=lambda: settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S,
    ),
)

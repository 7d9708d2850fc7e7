"""The routing table: a read-only snapshot of enabled deployments, cached per process.

The hot path never queries the database for routing; it reads this snapshot. A change made in
the database is served within GATEWAY_ROUTING_CACHE_TTL_S everywhere: the table is rebuilt in
the background once half of that has passed, and a request that finds it older than the TTL
waits for the rebuild (under steady traffic, none does).

One bad row never costs everyone the table: a provider whose credential cannot be decrypted, or
that cannot be routed to, is left out and reported (log, /readyz, the admin's provider list). A
failed rebuild keeps the previous table in service and is retried after a short backoff.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

import orjson
from django.conf import settings
from django.db import DatabaseError

from infra.db import db_call_bounded
from infra.perloop import PerLoop

from .capabilities import DEFAULT as DEFAULT_CAPABILITIES
from .capabilities import Capabilities
from .credentials import EMPTY, Credentials
from .kinds import BY_VALUE, needs_api_base, needs_region, serves_embeddings
from .models import (
    DEFAULT_ATTEMPT_TIMEOUT_S,
    DEFAULT_FIRST_BYTE_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    Deployment,
    Provider,
    api_base_problem,
)

log = logging.getLogger(__name__)

# After a failed rebuild: wait this long, doubling per failure in a row, up to the maximum.
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 10.0


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
    region: str = ""
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
class RoutingTable:
    # (mode, public model name) -> routes, cheapest first.
    routes: dict[tuple[str, str], tuple[Route, ...]]
    # When the snapshot was taken (time.monotonic(), at the start of the build).
    built_at: float
    skipped: tuple[Skipped, ...] = ()

    def candidates(self, mode: str, model: str) -> tuple[Route, ...]:
        return self.routes.get((mode, model), ())

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
    # "Cheapest first" is the only strategy so far; the policy/routing issue adds others.
    routes = {
        key: tuple(
            sorted(
                rs,
                key=lambda r: (r.input_cost_per_mtok + r.output_cost_per_mtok, r.deployment_id),
            )
        )
        for key, rs in grouped.items()
    }
    return RoutingTable(routes=routes, built_at=started, skipped=tuple(skipped))


class RoutingTableUnavailable(DatabaseError):
    """There is no routing table yet and building one failed moments ago (retried after a
    backoff). A DatabaseError: the database is what a build depends on."""


# A build reads every deployment and decrypts every credential: longer than a key lookup may
# take, but never without end (a database that stops answering would hold it forever).
_BUILD_TIMEOUT_S = 10.0


async def _build() -> RoutingTable:
    return await db_call_bounded(routing_table_build, timeout_s=_BUILD_TIMEOUT_S)


class _TableCache:
    """The process's routing table, refreshed ahead of its expiry.

    Younger than TTL/2: served. Between TTL/2 and the TTL: served while one background task
    rebuilds it. Older than the TTL: the request waits for that rebuild (at most
    GATEWAY_DB_WAIT_TIMEOUT_S), so nothing older is served while the database answers. A
    failed build keeps the previous table and is retried after a backoff; meanwhile requests
    are served, not held.
    """

    def __init__(self) -> None:
        self._table: RoutingTable | None = None
        self._locks: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)
        self._refresh: asyncio.Task | None = None
        self._failures = 0  # failed builds in a row
        self._retry_at = 0.0
        self._last_error = ""

    async def get(self) -> RoutingTable:
        table = self._table
        if table is not None:
            age = time.monotonic() - table.built_at
            ttl = settings.GATEWAY_ROUTING_CACHE_TTL_S
            if age < ttl / 2:
                return table
            refresh = self._start_refresh()
            if age < ttl or refresh is None:
                return table
            # A failure keeps the table it had. A database that accepts but does not answer
            # must not hold requests: past the wait, serve the table there is; the rebuild goes
            # on (and times out) in the background.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(refresh), settings.GATEWAY_DB_WAIT_TIMEOUT_S)
            return self._table or table
        async with self._locks.get():  # one build at a time, not one per waiting request
            if self._table is None:
                if time.monotonic() < self._retry_at:
                    raise RoutingTableUnavailable(
                        f"building the routing table failed ({self._last_error}); retrying soon"
                    )
                try:
                    self._install(await _build())
                except Exception as exc:
                    self._failed(exc)
                    raise
            return self._table

    def _start_refresh(self) -> asyncio.Task | None:
        """The rebuild in progress on this loop, or a new one; None while backing off."""
        task = self._refresh
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            return task
        if time.monotonic() < self._retry_at:
            return None
        self._refresh = asyncio.create_task(self._rebuild())
        return self._refresh

    async def _rebuild(self) -> None:
        try:
            table = await _build()
        except Exception as exc:
            self._failed(exc)
        else:
            self._install(table)

    def _install(self, table: RoutingTable) -> None:
        before = set(self._table.skipped) if self._table is not None else set()
        for item in table.skipped:
            if item not in before:
                where = f"{item.provider} ({item.deployment})" if item.deployment else item.provider
                log.warning("routing table: left out %s: %s", where, item.reason)
        for item in before - set(table.skipped):
            log.info("routing table: %s is routed to again", item.provider)
        if self._failures:
            log.info("routing table rebuilt after %d failed attempt(s)", self._failures)
        self._table = table
        self._failures, self._retry_at, self._last_error = 0, 0.0, ""

    def _failed(self, exc: Exception) -> None:
        self._failures += 1
        backoff = min(_BACKOFF_MAX_S, _BACKOFF_FIRST_S * 2 ** (self._failures - 1))
        self._retry_at = time.monotonic() + backoff
        self._last_error = type(exc).__name__
        served = (
            f"serving the table built {time.monotonic() - self._table.built_at:.1f} s ago"
            if self._table is not None
            else "no table to serve"
        )
        log.warning(
            "routing table build failed (%d in a row): %s; %s; next try in %.1f s",
            self._failures,
            exc,
            served,
            backoff,
        )

    def ensure_built(self) -> None:
        """Build the first table from synchronous code (the readiness probe), so the first
        request finds one. Does nothing if there is a table, or while backing off."""
        if self._table is not None or time.monotonic() < self._retry_at:
            return
        try:
            self._install(routing_table_build())
        except Exception as exc:
            self._failed(exc)

    def status(self) -> dict:
        """What /readyz reports: the table's age, what it leaves out, failed rebuilds."""
        table = self._table
        return {
            "age_s": None if table is None else round(time.monotonic() - table.built_at, 3),
            "skipped": [] if table is None else [s.as_dict() for s in table.skipped],
            "failed_builds": self._failures,
            "last_error": self._last_error or None,
        }

    def invalidate(self) -> None:
        self._table = None
        self._refresh = None
        self._failures, self._retry_at, self._last_error = 0, 0.0, ""


routing_table_cache = _TableCache()

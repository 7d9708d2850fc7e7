"""The routing table: a read-only snapshot of enabled deployments, cached per process.

The hot path never queries the database for routing; it reads this snapshot, rebuilt at most every
GATEWAY_ROUTING_CACHE_TTL_S seconds (so an admin change takes effect within that time everywhere).
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from infra.db import db_call
from infra.perloop import PerLoop

from .models import (
    DEFAULT_ATTEMPT_TIMEOUT_S,
    DEFAULT_FIRST_BYTE_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    Deployment,
)

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
    api_key: str = ""  # decrypted, in memory only; excluded from repr below
    region: str = ""
    input_cost_per_mtok: Decimal = Decimal(0)
    output_cost_per_mtok: Decimal = Decimal(0)
    context_window: int | None = None
    # Effective timeouts (the deployment's override, else the provider's), in seconds.
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = DEFAULT_FIRST_BYTE_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    attempt_timeout_s: float = DEFAULT_ATTEMPT_TIMEOUT_S

    def __repr__(self) -> str:  # never print the credential
        return f"Route({self.model_name} -> {self.provider_name}/{self.upstream_model})"

    @property
    def label(self) -> str:
        return f"{self.provider_name}/{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class RoutingTable:
    # (mode, public model name) -> routes, cheapest first.
    routes: dict[tuple[str, str], tuple[Route, ...]]
    built_at: float

    def candidates(self, mode: str, model: str) -> tuple[Route, ...]:
        return self.routes.get((mode, model), ())

    def model_names(self) -> set[str]:
        return {model for _, model in self.routes}

    def models_for_mode(self, mode: str) -> list[str]:
        return sorted(model for m, model in self.routes if m == mode)


def _first_set(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def routing_table_build() -> RoutingTable:
    deployments = Deployment.objects.filter(enabled=True, provider__enabled=True).select_related(
        "provider"
    )
    grouped: dict[tuple[str, str], list[Route]] = {}
    keys_by_provider: dict[int, str] = {}
    for d in deployments:
        p = d.provider
        if p.pk not in keys_by_provider:
            keys_by_provider[p.pk] = p.get_api_key()
        grouped.setdefault((d.mode, d.model_name), []).append(
            Route(
                deployment_id=d.pk,
                model_name=d.model_name,
                upstream_model=d.upstream_model,
                mode=d.mode,
                provider_id=p.pk,
                provider_name=p.name,
                provider_kind=p.kind,
                api_base=p.api_base,
                api_key=keys_by_provider[p.pk],
                region=d.effective_region,
                input_cost_per_mtok=d.input_cost_per_mtok,
                output_cost_per_mtok=d.output_cost_per_mtok,
                context_window=d.context_window,
                connect_timeout_s=_first_set(
                    d.connect_timeout_s,
                    p.connect_timeout_s,
                    settings.GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S,
                ),
                first_byte_timeout_s=_first_set(d.first_byte_timeout_s, p.first_byte_timeout_s),
                idle_timeout_s=_first_set(d.idle_timeout_s, p.idle_timeout_s),
                attempt_timeout_s=_first_set(d.attempt_timeout_s, p.attempt_timeout_s),
            )
        )
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
    return RoutingTable(routes=routes, built_at=time.monotonic())


def _fresh(table: RoutingTable | None) -> bool:
    return (
        table is not None
        and time.monotonic() - table.built_at < settings.GATEWAY_ROUTING_CACHE_TTL_S
    )


class _TableCache:
    """Stale-while-revalidate: only the very first request waits for a build.

    A stale table is served while one background task rebuilds it, so the periodic database
    query and credential decryption never sit in a request's latency, and a database outage
    keeps the last good table in service instead of failing every request.
    """

    def __init__(self) -> None:
        self._table: RoutingTable | None = None
        self._locks: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)
        self._refresh: asyncio.Task | None = None

    async def get(self) -> RoutingTable:
        table = self._table
        if table is None:
            async with self._locks.get():  # one build at a time, not one per waiting request
                if self._table is None:
                    self._table = await db_call(routing_table_build)
            return self._table
        if not _fresh(table) and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._rebuild())
        return table

    async def _rebuild(self) -> None:
        try:
            self._table = await db_call(routing_table_build)
        except Exception:
            log.exception("routing table rebuild failed; serving the previous table")

    def invalidate(self) -> None:
        self._table = None
        self._refresh = None


routing_table_cache = _TableCache()

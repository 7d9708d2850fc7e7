"""The chain of deployments a request may be served by, in the order to try them.

    the group's own deployments, in the group's strategy order
    -> each `fallbacks` group's, in that group's own order
    (a context-length error: each `context_fallbacks` group's instead)

Every segment is narrowed the same way as the group itself: the key's policy must allow the
fallback model (a fallback never opens a model the policy closes), its providers and regions
(residency holds on fallback too), the team's compliance requirements (a fallback never reaches
a provider without the agreements they need), and the deployment must have what the request
needs. A fallback group that leaves nothing is skipped, and said so in the log.

One health read (routing/health.py) serves the whole chain: the latency strategy's latencies
and the breakers' verdicts that calls.py acts on.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from compliance.snapshot import Gate
from routing import health
from routing.selectors import Group, Route, RoutingTable
from routing.strategies import order

from .context import RequestContext
from .errors import GatewayError

log = logging.getLogger("gateway.proxy")


@dataclass(slots=True)
class Chain:
    routes: tuple[Route, ...]  # the group's, then its fallback groups', in order
    context_routes: tuple[Route, ...] = ()  # tried instead on a context-length error
    healths: dict = field(default_factory=dict)

    def keep(self, ids: set[int]) -> None:
        """Drop the deployments not in `ids` (those a request cannot be translated for)."""
        self.routes = tuple(r for r in self.routes if r.deployment_id in ids)
        self.context_routes = tuple(r for r in self.context_routes if r.deployment_id in ids)

    @property
    def all_routes(self) -> tuple[Route, ...]:
        """Every deployment the request may reach: what admission prices the worst case at."""
        return self.routes + self.context_routes


def _segment(
    ctx: RequestContext,
    table: RoutingTable,
    mode: str,
    name: str,
    capable: Callable[[Sequence[Route]], Sequence[Route]],
    gate: Gate | None,
) -> tuple[Group, tuple[Route, ...]] | None:
    routes = table.candidates(mode, name)
    if routes and ctx.policy.may_use(name):
        routes = tuple(r for r in routes if ctx.policy.allows_route(r.provider_name, r.residency))
        if gate is not None and routes:
            routes = gate.narrow(routes)
        try:
            routes = tuple(capable(routes)) if routes else ()
        except GatewayError:
            routes = ()
        if routes:
            return table.group(mode, name), routes
    log.info("request %s: fallback group '%s' has no usable deployment", ctx.request_id, name)
    return None


def segments(
    ctx: RequestContext,
    table: RoutingTable,
    mode: str,
    names: Sequence[str],
    capable: Callable[[Sequence[Route]], Sequence[Route]],
    gate: Gate | None = None,
) -> list[tuple[Group, tuple[Route, ...]]]:
    found = []
    for name in names:
        segment = _segment(ctx, table, mode, name, capable, gate)
        if segment is not None:
            found.append(segment)
    return found


async def build(
    primary: list[tuple[Group, tuple[Route, ...]]],
    context: list[tuple[Group, tuple[Route, ...]]],
    *,
    prompt_tokens: int,
    output_tokens: int,
) -> Chain:
    """Order every segment by its own group's strategy, with one health read for all."""
    every = [r for _, routes in primary + context for r in routes]
    healths = await health.snapshot(every)
    latencies = {i: h.latency_ms for i, h in healths.items() if h.latency_ms is not None}

    def ordered(segs) -> tuple[Route, ...]:
        seen: set[int] = set()
        out: list[Route] = []
        for group, routes in segs:
            for route in order(
                routes,
                group.strategy,
                latencies=latencies,
                prompt_tokens=prompt_tokens,
                output_tokens=output_tokens,
            ):
                if route.deployment_id not in seen:  # a deployment in two groups: tried once
                    seen.add(route.deployment_id)
                    out.append(route)
        return tuple(out)

    return Chain(routes=ordered(primary), context_routes=ordered(context), healths=healths)

"""The order in which a group's deployments are tried: pure, no I/O.

    cheapest  lowest expected cost of this request: input price x estimated prompt tokens +
              output price x expected output tokens (with neither known: input + output
              price); ties by deployment id
    latency   lowest recent latency first (the EWMA the health state keeps, passed in);
              deployments with no latency yet come first, cheapest first among them, so a
              new deployment gets measured instead of never being tried
    weighted  a weighted random order by `weight` (every deployment stays, as a fallback);
              weight 0 only after all the others
    priority  by `priority` (lower first), then deployment id

The first route is tried first; the others are the fallbacks, in order. Capability and policy
filtering happen before (gateway/proxy/needs.py, limits.py): this only orders.
"""

import math
import random
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Protocol

from .selectors import Route

CHEAPEST = "cheapest"
LATENCY = "latency"
WEIGHTED = "weighted"
PRIORITY = "priority"
STRATEGIES = (CHEAPEST, LATENCY, WEIGHTED, PRIORITY)


class Rng(Protocol):
    def random(self) -> float: ...


def expected_cost(route: Route, prompt_tokens: int, output_tokens: int) -> Decimal:
    """Relative cost of this request at `route` (USD per 1M tokens x tokens)."""
    if not prompt_tokens and not output_tokens:
        return route.input_cost_per_mtok + route.output_cost_per_mtok
    return route.input_cost_per_mtok * prompt_tokens + route.output_cost_per_mtok * output_tokens


def _cheapest(routes: Sequence[Route], prompt_tokens: int, output_tokens: int) -> list[Route]:
    return sorted(
        routes, key=lambda r: (expected_cost(r, prompt_tokens, output_tokens), r.deployment_id)
    )


def _weighted(routes: Sequence[Route], rng: Rng) -> list[Route]:
    # Exponential race (Efraimidis-Spirakis): each draws -ln(u)/weight and the smallest goes
    # first. The first place then falls to each route with probability weight / total, and the
    # rest of the order is the same draw again among the others.
    def key(r: Route) -> tuple[float, int]:
        if r.weight <= 0:
            return (math.inf, r.deployment_id)
        u = 1.0 - rng.random()  # in (0, 1]: log(0) is undefined
        return (-math.log(u) / r.weight, r.deployment_id)

    return sorted(routes, key=key)


def order(
    routes: Sequence[Route],
    strategy: str,
    *,
    latencies: Mapping[int, float] | None = None,
    rng: Rng | None = None,
    prompt_tokens: int = 0,
    output_tokens: int = 0,
) -> tuple[Route, ...]:
    """`routes` in the order to try them. `latencies`: deployment id -> recent latency (ms);
    None or missing ids: unknown. An unknown strategy orders as cheapest."""
    if len(routes) <= 1:
        return tuple(routes)
    if strategy == PRIORITY:
        return tuple(sorted(routes, key=lambda r: (r.priority, r.deployment_id)))
    if strategy == WEIGHTED:
        return tuple(_weighted(routes, rng or random))
    cheapest = _cheapest(routes, prompt_tokens, output_tokens)
    if strategy != LATENCY or not latencies:
        return tuple(cheapest)
    known = sorted(
        (r for r in cheapest if r.deployment_id in latencies),
        key=lambda r: (latencies[r.deployment_id], r.deployment_id),
    )
    return (*(r for r in cheapest if r.deployment_id not in latencies), *known)

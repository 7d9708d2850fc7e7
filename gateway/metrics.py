"""GET /metrics: the Prometheus text exposition of gateway/proxy/metrics.py, plus breaker states.

Who may read it:
- GATEWAY_METRICS_TOKEN set: callers presenting `Authorization: Bearer <token>` (compared in
  constant time), from anywhere, loopback included; anyone else gets 401.
- unset: loopback clients only, by the client-address rule of infra/client_address.py (behind a
  proxy listed in GATEWAY_TRUSTED_PROXIES, the client it vouches for, not the proxy); anyone
  else gets 404, as if the endpoint did not exist. A reverse proxy on the same host that is not
  listed there makes every client look local: list it, or set the token.

Served by the middleware-free handler (gateway/asgi.py), like /v1: a scraper addressing the
server by IP needs no ALLOWED_HOSTS entry, and pays for no session or CSRF middleware.

Breaker states are read at scrape time from the shared health state (routing/health.py, one
Redis MGET for every deployment of this process's routing table), so they are the truth across
processes rather than what one process last saw.
"""

import asyncio
import hmac
import ipaddress
import logging
import time

import orjson
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.proxy import batched, metrics
from infra.client_address import of_request
from infra.state import StateUnavailable, get_state
from routing import health
from routing.selectors import routing_table_cache

log = logging.getLogger("gateway.metrics")

BREAKER_STATES = (health.CLOSED, health.OPEN, health.HALF_OPEN, health.COOLING)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def refusal(request: HttpRequest) -> HttpResponse | None:
    """The answer to a caller who may not read the metrics, or None."""
    token = settings.GATEWAY_METRICS_TOKEN
    if token:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return None
        response = HttpResponse("metrics need a bearer token\n", status=401)
        response["www-authenticate"] = 'Bearer realm="metrics"'
        return response
    if _is_loopback(of_request(request)):
        return None
    return HttpResponse("not found\n", status=404)


class _Breakers:
    """A collector of the breaker states read for this scrape: one series per deployment and
    state, 1 for the state it is in, 0 for the others (filter with `== 1`)."""

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.rows = rows  # (deployment label, provider, model, state)

    def collect(self):
        family = GaugeMetricFamily(
            "gateway_breaker_state",
            "Each deployment's circuit breaker: 1 for its current state, read from the shared "
            "health state at scrape time.",
            labels=["deployment", "provider", "model", "state"],
        )
        for deployment, provider, model, current in self.rows:
            for state in BREAKER_STATES:
                family.add_metric(
                    [deployment, provider, model, state], 1.0 if state == current else 0.0
                )
        yield family


async def breaker_rows() -> list[tuple[str, str, str, str]]:
    """Every routed deployment's breaker state, from the shared state; [] if unreadable."""
    try:
        table = await routing_table_cache.get()
    except DatabaseError as exc:
        log.warning("breaker states not exported: no routing table (%s)", exc)
        return []
    routes = {}
    for candidates in table.routes.values():
        for route in candidates:
            routes.setdefault(route.deployment_id, route)
    if not routes:
        return []
    ids = list(routes)
    try:
        values = await get_state().amget(*(health.key(i) for i in ids))
    except StateUnavailable as exc:
        log.warning("breaker states not exported: %s", exc)
        return []
    now_ms = time.time() * 1000
    rows = []
    for deployment_id, raw in zip(ids, values, strict=True):
        route = routes[deployment_id]
        state = health.health_of(orjson.loads(raw) if raw else {}, now_ms).state
        rows.append((route.label, route.provider_name, route.model_name, state))
    return sorted(rows)


class _Process:
    """This process's own registry, when there is no multiprocess directory (one process)."""

    def collect(self):
        from prometheus_client import REGISTRY

        return REGISTRY.collect()


def registry(rows: list[tuple[str, str, str, str]]) -> CollectorRegistry:
    """What one scrape exposes: every process's values (multiprocess mode) or this process's,
    and the breaker states."""
    found = CollectorRegistry()
    directory = metrics.multiproc_dir()
    if directory is not None:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(found, path=directory)
    else:
        found.register(_Process())
    found.register(_Breakers(rows))
    return found


async def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(status=405)
        response["allow"] = "GET, HEAD"
        return response
    refused = refusal(request)
    if refused is not None:
        return refused
    batched.flush_all()  # this process's phases and GC pauses, exact at this scrape
    rows = await breaker_rows()
    # Reading every process's files is disk I/O: off the event loop.
    body = await asyncio.to_thread(generate_latest, registry(rows))
    response = HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
    response["cache-control"] = "no-store"
    return response

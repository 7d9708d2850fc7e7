"""Active health checks: every enabled deployment probed on a schedule (Celery beat runs
`routing.health.check` every GATEWAY_HEALTH_CHECK_INTERVAL_S).

Each probe is the adapter's cheapest call (`probe`: a models endpoint where the provider has
one, else a 1-token completion), bounded by GATEWAY_HEALTH_CHECK_TIMEOUT_S. Its outcome goes
to the same shared state live traffic feeds (routing/health.py): a failed probe counts as a
failure (GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN of them in a row open the breaker, so a dead
deployment is skipped before a user request reaches it), a good one closes the breaker. The
result is also kept in Postgres for the admin: DeploymentHealth (the latest) and HealthCheck
rows (the latency history, purged beyond GATEWAY_HEALTH_HISTORY_DAYS or _ROWS).
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from infra import http

from . import health
from .health_models import DeploymentHealth, HealthCheck
from .providers import ProviderError, get_adapter
from .selectors import Route, routing_table_build

log = logging.getLogger(__name__)

_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class Probed:
    route: Route
    ok: bool
    latency_ms: float
    error: str = ""


def _short(route: Route, message: str) -> str:
    # Redacted: an upstream may echo the credential in its error message.
    return route.redact_text(message)[:_ERROR_CHARS]


async def _probe(route: Route, timeout_s: float) -> Probed:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await get_adapter(route.provider_kind).probe(route)
    except TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except ProviderError as exc:
        error = f"{exc.kind}: {exc.message}"
    except Exception as exc:  # one broken adapter never stops the other checks
        log.exception("health check of %s failed unexpectedly", route.label)
        error = f"check failed ({type(exc).__name__})"
    else:
        return Probed(route, True, (time.perf_counter() - started) * 1000)
    return Probed(route, False, (time.perf_counter() - started) * 1000, _short(route, error))


async def _probe_all(routes: list[Route]) -> list[Probed]:
    timeout_s = settings.GATEWAY_HEALTH_CHECK_TIMEOUT_S
    try:
        return list(await asyncio.gather(*(_probe(r, timeout_s) for r in routes)))
    finally:
        await http.aclose()  # this loop's connections: the task's loop ends here


def _routes(only: set[int] | None = None) -> list[Route]:
    """Every enabled deployment the routing table serves (or those of `only`), once each."""
    seen: dict[int, Route] = {}
    for routes in routing_table_build().routes.values():
        for route in routes:
            if only is None or route.deployment_id in only:
                seen.setdefault(route.deployment_id, route)
    return list(seen.values())


def health_check(deployment_ids: Iterable[int] | None = None) -> list[Probed]:
    """Probe every enabled deployment (or just these: the admin's "check now"), feed the shared
    state, record the results. A disabled or unroutable deployment is not probed."""
    only = None if deployment_ids is None else set(deployment_ids)
    results = asyncio.run(_probe_all(_routes(only)))
    now = timezone.now()
    for probed in results:
        outcome = health.OK if probed.ok else health.FAIL
        latency = probed.latency_ms if probed.ok else None
        state = health.report_sync(probed.route, outcome, latency_ms=latency)
        _record(probed, state, now)
        if not probed.ok:
            log.warning("health check: %s is down: %s", probed.route.label, probed.error)
    _purge(now)
    return results


def _record(probed: Probed, state: health.Health | None, now) -> None:
    deployment_id = probed.route.deployment_id
    with transaction.atomic():
        row, _ = DeploymentHealth.objects.select_for_update().get_or_create(
            deployment_id=deployment_id
        )
        row.last_check_at = now
        if probed.ok:
            row.last_ok_at = now
            row.consecutive_failures = 0
        else:
            row.last_error = probed.error
            row.consecutive_failures += 1
        if state is not None:
            row.state = state.state
            row.latency_ms = state.latency_ms
        row.save()
        HealthCheck.objects.create(
            deployment_id=deployment_id,
            at=now,
            ok=probed.ok,
            latency_ms=probed.latency_ms,
            error=probed.error,
        )


def _purge(now) -> None:
    HealthCheck.objects.filter(
        at__lt=now - timedelta(days=settings.GATEWAY_HEALTH_HISTORY_DAYS)
    ).delete()
    keep = settings.GATEWAY_HEALTH_HISTORY_ROWS
    for deployment_id in DeploymentHealth.objects.values_list("deployment_id", flat=True):
        cutoff = (
            HealthCheck.objects.filter(deployment_id=deployment_id)
            .order_by("-at", "-id")
            .values_list("at", flat=True)[keep : keep + 1]
        )
        if cutoff:
            HealthCheck.objects.filter(deployment_id=deployment_id, at__lte=cutoff[0]).delete()

"""Calling upstream: candidates in order, each attempt bounded, falling back before the first
byte reaches the client (nothing has been sent yet, so trying the next candidate is safe).

Deployment health (routing/health.py) decides who is tried: a deployment whose breaker is open
or that is cooling after a 429 is skipped before any attempt; a half-open one is tried only by
the request that gets its probe slot. Every attempt's outcome goes to the one health hook
(`health.report`, sent without the client waiting): success with its latency, a provider
failure, a 429 with its Retry-After; a client's own 4xx mistake or disconnect is no outcome. A
stream's success is reported by the relay when it ends (streaming.py).
"""

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from django.conf import settings

from routing import health
from routing.providers import ProviderError
from routing.selectors import Route

from . import metrics, retries, tracing
from .chain import Chain
from .context import RequestContext
from .errors import GatewayError, ServiceUnavailable, UpstreamFailed, UpstreamRejected

log = logging.getLogger("gateway.proxy")


def upstream_failed(exc: ProviderError, route: Route | None) -> GatewayError:
    if exc.kind == "client_error":
        # Relayed to the caller: never with a credential a careless upstream echoed.
        body = route.redact(exc.body) if route is not None and exc.body else exc.body
        rejected = UpstreamRejected(exc.status, body)
        if route is not None:  # after JSON decoding, in case of an escape the bytes hid
            rejected.message = route.redact_text(rejected.message)
            rejected.param = rejected.param and route.redact_text(rejected.param)
            rejected.code = rejected.code and route.redact_text(rejected.code)
        return rejected
    if exc.kind == "upstream_rate_limited":
        # A 429, Retry-After and all, so that SDKs back off as the provider asked.
        limited = UpstreamFailed(exc.message, status=429, code=exc.kind)
        limited.headers = dict(exc.headers)
        return limited
    status = {"upstream_timeout": 504, "upstream_unavailable": 503}.get(exc.kind, 502)
    return UpstreamFailed(exc.message, status=status, code=exc.kind)


# Less time than this left is no attempt: not even a round trip to a provider would fit. (Timers
# also fire up to a clock tick early, which can leave a sliver of the deadline.)
_MIN_ATTEMPT_S = 0.05


async def _retry_pause(exc: ProviderError, retried: int, deadline: float) -> bool:
    """Whether to try the same deployment again, after waiting its backoff."""
    if not exc.transient or retried >= settings.GATEWAY_UPSTREAM_RETRIES:
        return False
    wait = retries.backoff_s(retried)
    if time.monotonic() + wait + _MIN_ATTEMPT_S > deadline or not retries.budget.try_spend():
        return False
    await asyncio.sleep(wait)
    return True


def _attempt_timed_out(route: Route, seconds: float, started: float) -> ProviderError:
    return ProviderError.timeout(
        f"{route.provider_name} did not finish within {seconds:.3g} s",
        upstream_ms=(time.monotonic() - started) * 1000,
    )


class NoHealthyDeployment(ServiceUnavailable):
    code = "no_healthy_deployment"


def _no_healthy(routes, healths: dict, in_region: bool = False) -> GatewayError:
    """Every candidate is down or cooling: answered without calling any of them. Only cooling
    (each provider asked the gateway to wait): 429 with the shortest remaining Retry-After,
    as the provider would have answered. Otherwise 503 no_healthy_deployment."""
    found = [healths[r.deployment_id] for r in routes]
    retry_after = str(max(1, math.ceil(min((h.retry_in_s for h in found), default=1.0))))
    if found and all(h.state == health.COOLING for h in found):
        limited = UpstreamFailed(
            "the upstream provider is rate limiting the gateway",
            status=429,
            code="upstream_rate_limited",
        )
        limited.headers = {"retry-after": retry_after}
        return limited
    model = routes[0].model_name if routes else ""
    states = ", ".join(f"{r.label}: {healths[r.deployment_id].state}" for r in routes)
    # Under a residency rule, say so: the answer is an error, never a call elsewhere.
    where = " within the allowed regions" if in_region else ""
    return NoHealthyDeployment(
        f"no healthy deployment of '{model}'{where} is available ({states}); retry shortly",
        headers={"retry-after": retry_after},
    )


async def usable_routes(routes, healths: dict | None = None, *, in_region: bool = False):
    """The candidates whose health lets them be tried, in order; 503 no_healthy_deployment if
    none (never a call to a deployment known to be down). `healths`: a snapshot already read
    for these routes (the latency strategy's), else it is read here."""
    if healths is None:
        healths = await health.snapshot(routes)
    found = [r for r in routes if healths[r.deployment_id].usable]
    if not found:
        raise _no_healthy(routes, healths, in_region)
    return found, healths


def _report(ctx: RequestContext, route: Route, exc: ProviderError | None, started: float):
    probe, ctx.health_probe = ctx.health_probe, False
    if exc is None:
        health.report_soon(
            route, health.OK, latency_ms=(time.monotonic() - started) * 1000, probe=probe
        )
        return
    outcome, retry_after_s = health.outcome_of(exc)
    if outcome is None:
        if probe:
            health.report_soon(route, health.RELEASE, probe=True)
        return
    health.report_soon(route, outcome, retry_after_s=retry_after_s, probe=probe)


# What providers say when the prompt does not fit the model's context window.
_CONTEXT_MARKERS = (
    b"context_length_exceeded",
    b"maximum context length",
    b"prompt is too long",
    b"input is too long",
)


class _ContextTooLong(Exception):
    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error


def _context_exceeded(exc: ProviderError) -> bool:
    return exc.kind == "client_error" and any(m in (exc.body or b"") for m in _CONTEXT_MARKERS)


async def call(ctx: RequestContext, chain: Chain, attempt: Callable[[Route], Awaitable]):
    """Try the chain's candidates in order (chain.py: the group's, then its fallback groups').
    Nothing has been sent to the client yet, so falling back is safe.

    A transient failure (refused connection, 5xx, overload) is first retried on the same
    deployment, up to GATEWAY_UPSTREAM_RETRIES times, after a jittered backoff and only within
    the retry budget (retries.py); then the next candidate is tried. A provider's
    context-length error moves the request to the chain's context fallbacks. Each attempt is
    bounded by its route's attempt timeout and by what is left of the request's deadline;
    returns the result and when its attempt must end (a stream relays until then).
    """
    deadline = time.monotonic() + settings.GATEWAY_REQUEST_DEADLINE_S - ctx.elapsed_ms() / 1000
    retries.budget.deposit()
    attempt = tracing.upstream_attempts(attempt)  # itself when tracing is off
    try:
        return await _try(ctx, chain.routes, chain.healths, attempt, deadline)
    except _ContextTooLong as exc:
        if not chain.context_routes:
            raise upstream_failed(exc.error, ctx.route) from None
        log.info("request %s: the prompt is too long; trying context fallbacks", ctx.request_id)
        try:
            return await _try(ctx, chain.context_routes, chain.healths, attempt, deadline)
        except _ContextTooLong as again:
            raise upstream_failed(again.error, ctx.route) from None


async def _try(ctx: RequestContext, routes, healths, attempt, request_deadline: float):
    in_region = ctx.policy is not None and ctx.policy.restricts_regions
    routes, healths = await usable_routes(routes, healths or None, in_region=in_region)
    last: ProviderError | None = None
    for route in routes:
        if healths[route.deployment_id].state == health.HALF_OPEN:
            if not await health.acquire_probe(route):
                continue  # another request is probing it
            ctx.health_probe = True
        probing = ctx.health_probe
        retried = 0
        while True:
            started = time.monotonic()
            budget = min(route.attempt_timeout_s, request_deadline - started)
            if budget < _MIN_ATTEMPT_S:
                if ctx.health_probe:
                    _report(ctx, route, _released(), started)
                last = last or ProviderError(
                    "the request's deadline passed before an upstream was called",
                    retryable=False,
                    kind="upstream_timeout",
                )
                raise upstream_failed(last, ctx.route)
            ctx.attempts += 1
            ctx.route = route
            try:
                async with asyncio.timeout(budget):
                    result = await attempt(route)
            except TimeoutError:
                exc = _attempt_timed_out(route, budget, started)
            except ProviderError as failed:
                exc = failed
            except asyncio.CancelledError:
                # The client went away: no outcome, but a probe slot it held is freed.
                if ctx.health_probe:
                    _report(ctx, route, _released(), started)
                raise
            else:
                if not ctx.stream:  # a stream is reported by the relay, once it ends
                    _report(ctx, route, None, started)
                return result, started + budget
            _report(ctx, route, exc, started)
            ctx.upstream_ms += exc.upstream_ms
            ctx.fallbacks.append(f"{route.label}: {exc.kind}")
            metrics.upstream_failed(route, exc.kind)
            last = exc
            log.warning(
                "request %s: %s failed (%s, retryable=%s)",
                ctx.request_id,
                route.label,
                exc.kind,
                exc.retryable,
            )
            if not exc.retryable:
                if _context_exceeded(exc):
                    raise _ContextTooLong(exc)
                raise upstream_failed(last, ctx.route)
            # A failed probe re-opened the breaker: no second try there.
            if probing or not await _retry_pause(exc, retried, request_deadline):
                break  # the next candidate
            retried += 1
    if last is None:  # every usable one was a half-open deployment another request probes
        raise _no_healthy(routes, healths, in_region)
    raise upstream_failed(last, ctx.route)


def _released() -> ProviderError:
    """An outcome that is none (no attempt made, or the client left): frees a probe slot."""
    return ProviderError("", retryable=False, kind="client_error")

"""Calling upstream: candidates in order, each attempt bounded, falling back before the first
byte reaches the client (nothing has been sent yet, so trying the next candidate is safe)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from django.conf import settings

from routing.providers import ProviderError
from routing.selectors import Route

from . import retries
from .context import RequestContext
from .errors import GatewayError, UpstreamFailed, UpstreamRejected

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


async def call(ctx: RequestContext, routes, attempt: Callable[[Route], Awaitable]):
    """Try candidates in order. Nothing has been sent to the client yet, so falling back is safe.

    A transient failure (refused connection, 5xx, overload) is first retried on the same deployment,
    up to GATEWAY_UPSTREAM_RETRIES times, after a jittered backoff and only within the retry
    budget (retries.py); then the next candidate is tried. Each attempt is bounded by its
    route's attempt timeout and by what is left of the request's deadline; returns the result
    and when its attempt must end (a stream relays until then).
    """
    request_deadline = (
        time.monotonic() + settings.GATEWAY_REQUEST_DEADLINE_S - ctx.elapsed_ms() / 1000
    )
    retries.budget.deposit()
    last: ProviderError | None = None
    for route in routes:
        retried = 0
        while True:
            started = time.monotonic()
            budget = min(route.attempt_timeout_s, request_deadline - started)
            if budget < _MIN_ATTEMPT_S:
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
                    return await attempt(route), started + budget
            except TimeoutError:
                exc = _attempt_timed_out(route, budget, started)
            except ProviderError as failed:
                exc = failed
            ctx.upstream_ms += exc.upstream_ms
            ctx.fallbacks.append(f"{route.label}: {exc.kind}")
            last = exc
            log.warning(
                "request %s: %s failed (%s, retryable=%s)",
                ctx.request_id,
                route.label,
                exc.kind,
                exc.retryable,
            )
            if not exc.retryable:
                raise upstream_failed(last, ctx.route)
            if not await _retry_pause(exc, retried, request_deadline):
                break  # the next candidate
            retried += 1
    raise upstream_failed(last, ctx.route)

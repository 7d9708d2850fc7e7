"""Deployment health shared by every process: circuit breakers, 429 cooldowns, latency EWMA.

Live traffic (gateway/proxy/calls.py, the stream relay) and the active health check
(routing/health_checks.py) report outcomes through ONE hook, `report`; the hot path reads all
its candidates' health in one round trip, `snapshot`, cached per process for
GATEWAY_HEALTH_CACHE_S. The rules (docs/routing.md):

- closed -> open after GATEWAY_BREAKER_CONSECUTIVE_FAILURES failures in a row, or an error
  rate of GATEWAY_BREAKER_ERROR_RATE_PCT over at least GATEWAY_BREAKER_MIN_OUTCOMES outcomes
  in a window of GATEWAY_BREAKER_WINDOW_S (a window that restarts once it is that old);
- open for GATEWAY_BREAKER_OPEN_S, doubled after each failed probe up to
  GATEWAY_BREAKER_MAX_OPEN_S; then half-open: GATEWAY_BREAKER_HALF_OPEN_PROBES requests at a
  time pass; a success closes it, a failure re-opens it;
- a provider 429 cools the deployment for its Retry-After (capped at
  GATEWAY_BREAKER_MAX_COOLDOWN_S; without one, GATEWAY_BREAKER_DEFAULT_COOLDOWN_S, default 0);
  it is no breaker failure;
- a client's disconnect or its own 4xx mistake is no outcome at all.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import orjson
from django.conf import settings

from infra.state import StateUnavailable, get_state

from . import health_scripts as scripts
from .health_scripts import FAIL, LIMITED, OK, RELEASE
from .selectors import Route

log = logging.getLogger(__name__)

__all__ = [
    "FAIL",
    "LIMITED",
    "OK",
    "RELEASE",
    "Health",
    "acquire_probe",
    "outcome_of",
    "report",
    "report_soon",
    "snapshot",
]

CLOSED, OPEN, HALF_OPEN, COOLING = "closed", "open", "half_open", "cooling"


def key(deployment_id: int) -> str:
    return f"health:{deployment_id}"


@dataclass(frozen=True, slots=True)
class Health:
    state: str  # closed | open | half_open | cooling
    usable: bool
    latency_ms: float | None
    # Not usable: seconds until it may be (the end of the open period or the cooldown).
    retry_in_s: float = 0.0
    consecutive_failures: int = 0


UNKNOWN = Health(CLOSED, True, None)


def health_of(state: dict, now_ms: float) -> Health:
    latency = state.get("l")
    failures = int(state.get("f", 0))
    if state.get("s", 0) == 1:
        until = state.get("u", 0)
        if now_ms < until:
            return Health(OPEN, False, latency, (until - now_ms) / 1000, failures)
        free = state.get("pu", 0) < now_ms or state.get("p", 0) < _probes()
        return Health(HALF_OPEN, free, latency, 0.0 if free else 1.0, failures)
    cooling = state.get("c", 0)
    if now_ms < cooling:
        return Health(COOLING, False, latency, (cooling - now_ms) / 1000, failures)
    return Health(CLOSED, True, latency, 0.0, failures)


def _probes() -> int:
    return settings.GATEWAY_BREAKER_HALF_OPEN_PROBES


# deployment id -> (when read, time.monotonic(); its state). Per process: the hot path reads
# Redis at most once per GATEWAY_HEALTH_CACHE_S for a set of candidates, and not at all within
# it. A process's own reports refresh its entries at once (the script returns the new state).
_cache: dict[int, tuple[float, dict]] = {}


def _remember(deployment_id: int, raw: bytes | None) -> dict:
    state = orjson.loads(raw) if raw else {}
    _cache[deployment_id] = (time.monotonic(), state)
    return state


async def snapshot(routes: Iterable[Route]) -> dict[int, Health]:
    """Each route's health: one round trip (MGET) for the entries older than the cache TTL,
    none when all are fresh. The store unreachable: every route counts as healthy (routing
    must not stop because health cannot be read; the request's own failures still fall back)."""
    ids = [r.deployment_id for r in routes]
    now = time.monotonic()
    ttl = settings.GATEWAY_HEALTH_CACHE_S
    stale = [i for i in ids if i not in _cache or now - _cache[i][0] >= ttl]
    if stale:
        try:
            values = await get_state().amget(*(key(i) for i in stale))
        except StateUnavailable as exc:
            log.warning("deployment health unreadable, routing without it: %s", exc)
            return dict.fromkeys(ids, UNKNOWN)
        for deployment_id, raw in zip(stale, values, strict=True):
            _remember(deployment_id, raw)
    now_ms = time.time() * 1000
    return {i: health_of(_cache[i][1], now_ms) for i in ids}


def forget_cache() -> None:
    _cache.clear()


def _report_args(kind: str, latency_ms, retry_after_s, probe: bool, check: bool) -> list:
    s = settings
    threshold = (
        s.GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN if check else s.GATEWAY_BREAKER_CONSECUTIVE_FAILURES
    )
    cooldown_ms = 0
    if kind == LIMITED:
        wait = s.GATEWAY_BREAKER_DEFAULT_COOLDOWN_S if retry_after_s is None else retry_after_s
        cooldown_ms = int(min(max(wait, 0.0), s.GATEWAY_BREAKER_MAX_COOLDOWN_S) * 1000)
    return [
        kind,
        "" if latency_ms is None else f"{latency_ms:.3f}",
        cooldown_ms,
        "1" if probe else "0",
        threshold,
        int(s.GATEWAY_BREAKER_WINDOW_S * 1000),
        s.GATEWAY_BREAKER_MIN_OUTCOMES,
        s.GATEWAY_BREAKER_ERROR_RATE_PCT,
        int(s.GATEWAY_BREAKER_OPEN_S * 1000),
        int(s.GATEWAY_BREAKER_MAX_OPEN_S * 1000),
        s.GATEWAY_HEALTH_EWMA_ALPHA,
        _ttl_s(),
        "1" if check else "0",
    ]


def _ttl_s() -> int:
    # State outlives the longest open period, so a quiet deployment's breaker is not forgotten.
    s = settings
    return int(max(s.GATEWAY_BREAKER_MAX_OPEN_S, s.GATEWAY_BREAKER_MAX_COOLDOWN_S, 3600) * 2)


async def report(
    route: Route,
    outcome: str,
    *,
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
    retry_after_s: float | None = None,
    probe: bool = False,
    check: bool = False,
) -> Health | None:
    """THE outcome hook: one script run (one round trip). `ttft_ms` (streams) is the latency
    the EWMA takes when given, else `latency_ms`. `probe`: this request held a half-open probe
    slot, now freed. `check`: from the active health check (its own failure threshold; its
    success closes even an open breaker). Never raises: health is advisory."""
    latency = ttft_ms if ttft_ms is not None else latency_ms
    args = _report_args(outcome, latency, retry_after_s, probe, check)
    try:
        raw = await get_state().run_script(scripts.REPORT, [key(route.deployment_id)], args)
    except StateUnavailable as exc:
        log.warning("deployment health not recorded for %s: %s", route.label, exc)
        return None
    state = _remember(route.deployment_id, raw)
    return health_of(state, time.time() * 1000)


def report_sync(route: Route, outcome: str, *, latency_ms: float | None = None) -> Health | None:
    """`report` for the active health check (a Celery task, synchronous): its outcomes open
    after GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN failures, and a success closes the breaker."""
    args = _report_args(outcome, latency_ms, None, False, True)
    try:
        raw = get_state().run_script_sync(scripts.REPORT, [key(route.deployment_id)], args)
    except StateUnavailable as exc:
        log.warning("deployment health not recorded for %s: %s", route.label, exc)
        return None
    return health_of(orjson.loads(raw), time.time() * 1000)


_READ = scripts.Script(
    "health_read", "return redis.call('GET', KEYS[1])", lambda view, keys, _: view.get(keys[0])
)


def current_sync(deployment_id: int) -> Health | None:
    """The live shared state of one deployment (the admin); None if the store is unreachable."""
    try:
        raw = get_state().run_script_sync(_READ, [key(deployment_id)], [])
    except StateUnavailable:
        return None
    return health_of(orjson.loads(raw) if raw else {}, time.time() * 1000)


_READ_MANY = scripts.Script(
    "health_read_many",
    "return redis.call('MGET', unpack(KEYS))",
    lambda view, keys, _: [view.get(k) for k in keys],
)


def current_many_sync(deployment_ids: Iterable[int]) -> dict[int, Health] | None:
    """The live shared state of several deployments in one round trip (the admin's index and
    lists), for those that have one (no traffic or check yet: absent); None if the store is
    unreachable."""
    ids = list(deployment_ids)
    if not ids:
        return {}
    try:
        raws = get_state().run_script_sync(_READ_MANY, [key(i) for i in ids], [])
    except StateUnavailable:
        return None
    now_ms = time.time() * 1000
    return {
        i: health_of(orjson.loads(raw), now_ms) for i, raw in zip(ids, raws, strict=True) if raw
    }


# Reports sent after the answer, so the client never waits for them; referenced until done.
_pending: set[asyncio.Task] = set()


def report_soon(route: Route, outcome: str, **kwargs) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no running loop (a generator closed outside one): nothing to send
        return
    task = loop.create_task(report(route, outcome, **kwargs))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def drain() -> None:
    """Wait for reports still in flight (tests, shutdown)."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)


async def acquire_probe(route: Route) -> bool:
    """A half-open deployment: take one of its probe slots, or learn that none is free."""
    s = settings
    lease_ms = int((route.attempt_timeout_s + 5) * 1000)
    try:
        got = await get_state().run_script(
            scripts.ACQUIRE_PROBE,
            [key(route.deployment_id)],
            [s.GATEWAY_BREAKER_HALF_OPEN_PROBES, lease_ms, _ttl_s()],
        )
    except StateUnavailable:
        return True
    if not got:
        # Another process holds the probe: remember it as unusable until the next read.
        _cache.pop(route.deployment_id, None)
    return bool(got)


def _retry_after_s(headers: dict[str, str]) -> float | None:
    millis = headers.get("retry-after-ms")
    if millis:
        return float(millis) / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def outcome_of(exc) -> tuple[str | None, float | None]:
    """A ProviderError as an outcome: (kind, Retry-After seconds). None: not the provider's
    fault (the caller's own 4xx mistake), so not counted."""
    if exc.kind == "client_error":
        return None, None
    if exc.kind == "upstream_rate_limited":
        return LIMITED, _retry_after_s(exc.headers)
    return FAIL, None

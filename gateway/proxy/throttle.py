"""Failed authentications, counted per client address: too many in a minute, and it gets 429.

Counted in the state store, so every web process sees the same count, in fixed one-minute
windows (`gw:authfail:<address>:<minute>`). What it costs:
- an authenticated request with a key in the process cache: nothing;
- a process-cache miss: nothing extra, the counter rides along in the MGET that fetches the
  key's snapshot (gateway/proxy/auth.py), and a count at the limit is a 429 before any lookup;
- a failure: one increment.
An address that reached the limit is also remembered in the process until the window ends, so
its next requests are refused without any I/O at all.

Each failure is logged once, as a refusal (gateway/proxy/refusals.py): request id, client
address and, for something shaped like a gateway key, its visible prefix; never more of it.

The client address is the one refusals log: the socket peer, or behind a load balancer listed
in GATEWAY_TRUSTED_PROXIES, the X-Forwarded-For hop it vouches for.
"""

import logging
import math
import time
from collections import OrderedDict

from django.conf import settings
from django.http import HttpRequest

from infra.client_address import of_request
from infra.state import StateUnavailable, get_state

from .errors import GatewayError

log = logging.getLogger("gateway.auth")

WINDOW_S = 60
COUNTER_PREFIX = "gw:authfail:"
# address -> time.monotonic() when its block ends; bounded like any per-client map.
blocked: OrderedDict[str, float] = OrderedDict()
_BLOCKED_MAX = 10_000


class AuthThrottled(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_failed_authentications"


def _window() -> tuple[int, int]:
    """The current window's number and the seconds left in it."""
    now = int(time.time())
    return now // WINDOW_S, WINDOW_S - now % WINDOW_S


def client_address(request: HttpRequest) -> str:
    return of_request(request)


def counter_name(request: HttpRequest) -> str | None:
    """The state store key counting this client's failures now; None when throttling is off."""
    if settings.GATEWAY_AUTH_FAILURES_PER_MINUTE <= 0:
        return None
    return f"{COUNTER_PREFIX}{client_address(request)}:{_window()[0]}"


def _throttled(seconds: int) -> AuthThrottled:
    return AuthThrottled(
        "too many failed authentication attempts from this address; retry after "
        f"{seconds} s with a valid API key",
        headers={"retry-after": str(seconds)},
    )


def _block(address: str, seconds: int) -> None:
    blocked[address] = time.monotonic() + seconds
    blocked.move_to_end(address)
    while len(blocked) > _BLOCKED_MAX:
        blocked.popitem(last=False)


def refuse_if_blocked(request: HttpRequest) -> None:
    address = client_address(request)
    until = blocked.get(address)
    if until is None:
        return
    left = until - time.monotonic()
    if left <= 0:
        del blocked[address]
        return
    raise _throttled(max(1, math.ceil(left)))


def check_count(request: HttpRequest, raw: bytes | None) -> None:
    """Refuse when the failure count read from the store has reached the limit."""
    if raw is None or int(raw) < settings.GATEWAY_AUTH_FAILURES_PER_MINUTE:
        return
    _, left = _window()
    _block(client_address(request), left)
    raise _throttled(left)


async def failed(request: HttpRequest) -> None:
    """Count one failed authentication; raises AuthThrottled past the limit.

    Returns normally otherwise: the caller raises the 401 itself (logged as a refusal).
    """
    address = client_address(request)
    limit = settings.GATEWAY_AUTH_FAILURES_PER_MINUTE
    if limit <= 0:
        return
    window, left = _window()
    try:
        count = await get_state().aincrby(f"{COUNTER_PREFIX}{address}:{window}", 1, WINDOW_S + 5)
    except StateUnavailable:
        return  # the refusal stands; counting is best effort while the store is away
    if count >= limit:
        if count == limit:
            log.warning(
                "client %s refused for %d s after %d failed authentications", address, left, limit
            )
        _block(address, left)
    if count > limit:
        raise _throttled(left)

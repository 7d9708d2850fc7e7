"""Failed authentications, counted per client address: too many in a minute, and it gets 429.

Counted in the state store, so every web process sees the same count, in fixed one-minute
windows (`gw:authfail:<address>:<minute>`). What it costs:
- an authenticated request with a key in the process cache: nothing;
- a process-cache miss: nothing extra, the counter rides along in the MGET that fetches the
  key's snapshot (gateway/proxy/auth.py), and a count at the limit is a 429 before any lookup;
- a failure: one increment.
An address that reached the limit is also remembered in the process until the window ends, so
its next requests are refused without any I/O at all.

Each failure is logged with the request id, the client address and, for something shaped like
a gateway key, its visible prefix (the same characters the admin shows); never more of it.

Behind a load balancer every request comes from the balancer's address unless the ASGI server
is told to trust the balancer's X-Forwarded-For (see client_address).
"""

import logging
import math
import time
from collections import OrderedDict

from django.conf import settings
from django.http import HttpRequest

from infra.state import StateUnavailable, get_state
from tenants.keys import KEY_PREFIX, SHOWN_PREFIX_LEN

from .errors import GatewayError

log = logging.getLogger("gateway.auth")

WINDOW_S = 60
COUNTER_PREFIX = "gw:authfail:"
# address -> time.monotonic() when its block ends; bounded like any per-client map.
blocked: OrderedDict[str, float] = OrderedDict()
_BLOCKED_MAX = 10_000
_ADDRESS_MAX = 64


class AuthThrottled(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_failed_authentications"


def _window() -> tuple[int, int]:
    """The current window's number and the seconds left in it."""
    now = int(time.time())
    return now // WINDOW_S, WINDOW_S - now % WINDOW_S


def client_address(request: HttpRequest) -> str:
    """The address the ASGI server reports. Behind a load balancer, have the server take it
    from X-Forwarded-For (uvicorn: --forwarded-allow-ips / FORWARDED_ALLOW_IPS, 127.0.0.1 by
    default); a header from anyone else is the client's own word and ignored there."""
    return (request.META.get("REMOTE_ADDR") or "unknown")[:_ADDRESS_MAX]


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


def visible_prefix(secret: str | None) -> str:
    """What of a presented key may be logged: a gateway key's shown prefix, else nothing."""
    if secret is None:
        return "-"
    if secret.startswith(KEY_PREFIX) and len(secret) > 2 * SHOWN_PREFIX_LEN:
        return secret[:SHOWN_PREFIX_LEN]
    return "(not a gateway key)"


async def failed(request: HttpRequest, request_id: str, secret: str | None, reason: str) -> None:
    """Log and count one failed authentication; raises AuthThrottled past the limit.

    Returns normally otherwise: the caller raises the 401 itself.
    """
    address = client_address(request)
    log.warning(
        "authentication failed: request=%s client=%s key=%s reason=%s",
        request_id or "-",
        address,
        visible_prefix(secret),
        reason,
    )
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

"""Login throttling shared by the admin's and the portal's sign-in forms: a password guesser
gets a 429, not unlimited attempts.

Attempts are counted per client IP and, separately, per username (so guessing one account from
many addresses is throttled too), in the shared cache (Redis in production): every web process
sees the same counts. Both forms count in the same buckets, so switching forms gains nothing.
"""

import logging

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

log = logging.getLogger(__name__)
GROUP = "admin-login"


def _username(group: str, request: HttpRequest) -> str:
    # Case-folded: "Admin" and "admin" are one account to a guesser.
    return request.POST.get("username", "").strip().casefold()


def login_wait(request: HttpRequest) -> int | None:
    """Count this attempt; seconds until the caller may try again, or None if it may now.

    Raises redis.RedisError when the counters are unreachable: callers refuse the attempt then
    (503) rather than allow unlimited guesses."""
    rate = settings.GATEWAY_ADMIN_LOGIN_RATE
    waits = []
    for scope, key in (("ip", "ip"), ("username", _username)):
        usage = get_usage(
            request, group=f"{GROUP}:{scope}", key=key, rate=rate, method="POST", increment=True
        )
        if usage and usage["should_limit"]:
            log.warning("login throttled by %s", scope)
            waits.append(max(usage["time_left"], 1))
    return max(waits) if waits else None


def reset_wait(request: HttpRequest) -> int | None:
    """Count a password-reset request per client IP (each sends an email); as login_wait."""
    usage = get_usage(
        request,
        group="password-reset:ip",
        key="ip",
        rate=settings.GATEWAY_PASSWORD_RESET_RATE,
        method="POST",
        increment=True,
    )
    if usage and usage["should_limit"]:
        log.warning("password reset throttled by ip")
        return max(usage["time_left"], 1)
    return None

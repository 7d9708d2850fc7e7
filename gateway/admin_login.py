"""The admin login, throttled: a password guesser gets a 429 page, not unlimited attempts.

The counting (per client IP and per username, in the shared cache) is portal/throttle.py's,
shared with the portal's sign-in form (/portal/login/, /accounts/login/): one set of counters,
so a guesser gains nothing by switching forms.
"""

import logging

import redis
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from portal.throttle import login_wait

log = logging.getLogger(__name__)


def _refusal(request: HttpRequest, status: int, title: str, message: str) -> TemplateResponse:
    context = {**admin.site.each_context(request), "title": title, "message": message}
    return TemplateResponse(request, "admin/login_refused.html", context, status=status)


def _refused(request: HttpRequest) -> HttpResponse | None:
    """The refusal for a throttled (or uncountable) login attempt; None when it may proceed."""
    if request.method != "POST":
        return None
    try:
        wait = login_wait(request)
    except redis.RedisError:
        # The counters are unreachable: refuse rather than allow unlimited guesses.
        log.exception("login refused: the rate limiter's Redis is unreachable")
        return _refusal(
            request,
            503,
            "Login unavailable",
            "The gateway cannot reach its shared store (Redis) to count login attempts. "
            "Try again in a minute; if it persists, check Redis.",
        )
    if wait is None:
        return None
    response = _refusal(
        request,
        429,
        "Too many login attempts",
        f"Too many login attempts from this address or for this username. "
        f"Wait {wait} seconds, then try again.",
    )
    response["Retry-After"] = str(wait)
    return response


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    return _refused(request) or admin.site.login(request, extra_context)

"""The admin login and the team members' login, throttled: a password guesser gets a 429 page,
not unlimited attempts.

Attempts are counted per client IP and, separately, per username (so guessing one account from
many addresses is throttled too), in the shared cache: every web process sees the same counts.
"""

import logging

import redis
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django_ratelimit.core import get_usage

from tenants.models import Team

log = logging.getLogger(__name__)
GROUP = "admin-login"


def _username(group: str, request: HttpRequest) -> str:
    # Case-folded: "Admin" and "admin" are one account to a guesser.
    return request.POST.get("username", "").strip().casefold()


def _throttled_for(request: HttpRequest) -> int | None:
    """Count this attempt; seconds until the caller may try again, or None if it may now."""
    rate = settings.GATEWAY_ADMIN_LOGIN_RATE
    waits = []
    for scope, key in (("ip", "ip"), ("username", _username)):
        usage = get_usage(
            request, group=f"{GROUP}:{scope}", key=key, rate=rate, method="POST", increment=True
        )
        if usage and usage["should_limit"]:
            log.warning("admin login throttled by %s", scope)
            waits.append(max(usage["time_left"], 1))
    return max(waits) if waits else None


def _refusal(request: HttpRequest, status: int, title: str, message: str) -> TemplateResponse:
    context = {**admin.site.each_context(request), "title": title, "message": message}
    return TemplateResponse(request, "admin/login_refused.html", context, status=status)


def _refused(request: HttpRequest) -> HttpResponse | None:
    """The refusal for a throttled (or uncountable) login attempt; None when it may proceed."""
    if request.method != "POST":
        return None
    try:
        wait = _throttled_for(request)
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


# Team members (not staff) sign in here for their team pages; the same counters as the admin's
# login, so a guesser gains nothing by switching forms.
class _MemberLoginView(LoginView):
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        """Without ?next=, the member's (first) team page rather than a page that is not there."""
        team = Team.objects.for_user(self.request.user).order_by("slug").first()
        if team is None:
            return super().get_default_redirect_url()
        return reverse("team-analytics", args=[team.slug])


_account_login_view = _MemberLoginView.as_view()


def account_login(request: HttpRequest) -> HttpResponse:
    return _refused(request) or _account_login_view(request)

"""Sign-in, sign-out and password reset: Django's auth views with the portal's templates, the
sign-in and the reset request throttled (portal/throttle.py)."""

import logging

import redis
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse, reverse_lazy

from .. import throttle

log = logging.getLogger(__name__)


def _refusal(request: HttpRequest, wait_fn) -> HttpResponse | None:
    """The refusal of a throttled (or uncountable) POST; None when it may proceed."""
    if request.method != "POST":
        return None
    try:
        wait = wait_fn(request)
    except redis.RedisError:
        # The counters are unreachable: refuse rather than allow unlimited guesses.
        log.exception("sign-in refused: the rate limiter's Redis is unreachable")
        return TemplateResponse(
            request,
            "portal/refused.html",
            {
                "title": "Sign-in unavailable",
                "message": "The gateway cannot count sign-in attempts right now. "
                "Try again in a minute.",
            },
            status=503,
        )
    if wait is None:
        return None
    response = TemplateResponse(
        request,
        "portal/refused.html",
        {
            "title": "Too many attempts",
            "message": f"Too many attempts from this address or for this account. "
            f"Wait {wait} seconds, then try again.",
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        return _refusal(request, throttle.login_wait) or super().post(request, *args, **kwargs)

    def get_default_redirect_url(self) -> str:
        # Without ?next=, the portal's landing page: the member's first team.
        return reverse("portal:home")


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def post(self, request, *args, **kwargs):
        # Throttled: each request sends an email, to an address someone else may own.
        return _refusal(request, throttle.reset_wait) or super().post(request, *args, **kwargs)


login = LoginView.as_view()
logout = auth_views.LogoutView.as_view(next_page=reverse_lazy("portal:login"))
password_reset = PasswordResetView.as_view()
password_reset_done = auth_views.PasswordResetDoneView.as_view(
    template_name="portal/password_reset_done.html"
)
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="portal/password_reset_confirm.html",
    success_url=reverse_lazy("portal:password_reset_complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="portal/password_reset_complete.html"
)

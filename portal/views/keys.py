"""A team's keys: list, create, rotate, revoke, limits. Thin: scope (404), check the role (403),
call the service with the signed-in user as the actor.

A new secret is rendered straight into the POST's response, with no-store caching, and is
kept nowhere: not in the session, not in a message, not in a URL. Once the page is gone, so is
the secret; only its hash is stored (tenants/keys.py).
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from tenants import services
from tenants.models import ApiKey, Team
from tenants.roles import Action

from .. import access, forms, selectors
from .common import render


def _shown_once(request: HttpRequest, team: Team, issued, heading: str) -> HttpResponse:
    response = render(
        request,
        "portal/key_created.html",
        team,
        section="keys",
        key=issued.api_key,
        secret=issued.secret,
        heading=heading,
        base_url=request.build_absolute_uri("/v1"),
    )
    add_never_cache_headers(response)  # includes no-store: no cache keeps the secret
    return response


@login_required
def key_list(request: HttpRequest, team_slug: str) -> HttpResponse:
    team = access.team_or_404(request.user, team_slug)
    period = selectors.current_period()
    rows = selectors.key_rows(
        team=team,
        period=period,
        manageable=lambda key: access.may_manage_key(request.user, team, key),
    )
    return render(request, "portal/keys.html", team, section="keys", rows=rows, period=period)


@login_required
@require_http_methods(["GET", "POST"])
def key_create(request: HttpRequest, team_slug: str) -> HttpResponse:
    team = access.team_or_404(request.user, team_slug)
    access.require(request.user, Action.KEY_CREATE_OWN, team)
    form = forms.KeyCreateForm(request.POST or None, team=team)
    if request.method == "POST" and form.is_valid():
        issued = services.api_key_issue(
            team=team,
            name=form.cleaned_data["name"],
            owner=request.user,
            project=form.cleaned_data.get("project"),
            expires_in_days=form.cleaned_data["expires_in_days"],
            actor=request.user,
        )
        return _shown_once(request, team, issued, "Key created")
    return render(request, "portal/key_create.html", team, section="keys", form=form)


def _manageable_key(request: HttpRequest, team_slug: str, key_id: int) -> tuple[Team, ApiKey]:
    team = access.team_or_404(request.user, team_slug)
    key = access.key_or_404(team, key_id)
    access.require(request.user, Action.KEY_MANAGE_OWN, team, key=key)
    return team, key


@login_required
@require_http_methods(["GET", "POST"])
def key_rotate(request: HttpRequest, team_slug: str, key_id: int) -> HttpResponse:
    team, key = _manageable_key(request, team_slug, key_id)
    if not key.is_active:
        messages.error(request, f"“{key.name}” is no longer active; create a new key instead.")
        return redirect("portal:keys", team_slug=team.slug)
    form = forms.KeyRotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        issued = services.api_key_rotate(
            api_key=key, grace_seconds=form.cleaned_data["grace_seconds"], actor=request.user
        )
        return _shown_once(request, team, issued, "Key rotated")
    return render(request, "portal/key_rotate.html", team, section="keys", key=key, form=form)


@login_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: HttpRequest, team_slug: str, key_id: int) -> HttpResponse:
    team, key = _manageable_key(request, team_slug, key_id)
    if request.method == "POST":
        services.api_key_revoke(api_key=key, actor=request.user)
        messages.success(request, f"“{key.name}” ({key.prefix}…) is revoked.")
        return redirect("portal:keys", team_slug=team.slug)
    return render(request, "portal/key_revoke.html", team, section="keys", key=key)


@login_required
@require_http_methods(["GET", "POST"])
def key_limits(request: HttpRequest, team_slug: str, key_id: int) -> HttpResponse:
    team, key = _manageable_key(request, team_slug, key_id)
    current = selectors.key_limits(key)
    initial = {"rpm": current.rpm, "tpm": current.tpm, "budget_usd": current.budget}
    form = forms.KeyLimitsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.api_key_limits_set(api_key=key, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Limits of “{key.name}” saved.")
            return redirect("portal:keys", team_slug=team.slug)
    return render(
        request,
        "portal/key_limits.html",
        team,
        section="keys",
        key=key,
        form=form,
        team_limits=selectors.team_limits(team),
    )

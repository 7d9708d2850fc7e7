"""A team's members: list, add, change role, remove. Who may do which is tenants.roles'
may_set_role: leads manage members and viewers and appoint leads; owners also handle owners
and demote leads; anyone may step down or leave. The services refuse to leave a team without
an owner or a lead."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from tenants import services
from tenants.models import Membership

from .. import access, forms, selectors
from .common import render


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


def _labelled(roles: list[str]) -> list[tuple[str, str]]:
    return [(r, Membership.Role(r).label) for r in roles]


@login_required
@require_http_methods(["GET", "POST"])
def member_list(request: HttpRequest, team_slug: str) -> HttpResponse:
    team = access.team_or_404(request.user, team_slug)
    grantable = access.grantable(request.user, team)
    form = forms.MemberAddForm(request.POST or None, roles=grantable) if grantable else None
    if request.method == "POST" and form is None:
        raise PermissionDenied
    if request.method == "POST" and form.is_valid():
        user, role = form.cleaned_data["user"], form.cleaned_data["role"]
        if Membership.objects.filter(team=team, user=user).exists():
            form.add_error("user", "Already a member of this team.")
        else:
            try:
                services.membership_add(team=team, user=user, role=role, actor=request.user)
            except ValidationError as exc:
                form.add_error(None, _errors(exc))
            else:
                messages.success(request, f"{user.get_username()} joined as {role}.")
                return redirect("portal:members", team_slug=team.slug)
    rows = []
    for m in selectors.members(team):
        options = access.role_options(request.user, team, m)
        rows.append(
            {
                "membership": m,
                "is_me": m.user_id == request.user.pk,
                # A select only when there is something to choose.
                "roles": _labelled(options) if len(options) > 1 else None,
                "removable": access.may_set_role(request.user, team, m, None),
            }
        )
    return render(
        request,
        "portal/members.html",
        team,
        section="members",
        rows=rows,
        form=form,
        status=400 if form is not None and form.errors else 200,
    )


def _membership(request: HttpRequest, team_slug: str, membership_id: int):
    team = access.team_or_404(request.user, team_slug)
    return team, access.membership_or_404(team, membership_id)


@login_required
@require_POST
def member_role(request: HttpRequest, team_slug: str, membership_id: int) -> HttpResponse:
    team, membership = _membership(request, team_slug, membership_id)
    role = request.POST.get("role", "")
    if role not in Membership.Role.values or not access.may_set_role(
        request.user, team, membership, role
    ):
        raise PermissionDenied
    name = membership.user.get_username()
    try:
        services.membership_role_set(membership=membership, role=role, actor=request.user)
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(request, f"{name} is now {role}.")
    return redirect("portal:members", team_slug=team.slug)


@login_required
@require_http_methods(["GET", "POST"])
def member_remove(request: HttpRequest, team_slug: str, membership_id: int) -> HttpResponse:
    team, membership = _membership(request, team_slug, membership_id)
    if not access.may_set_role(request.user, team, membership, None):
        raise PermissionDenied
    leaving = membership.user_id == request.user.pk
    if request.method == "POST":
        name = membership.user.get_username()
        try:
            services.membership_remove(membership=membership, actor=request.user)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(
                request, f"You left {team.name}." if leaving else f"{name} left {team.name}."
            )
            if leaving:
                return redirect("portal:home")
        return redirect("portal:members", team_slug=team.slug)
    return render(
        request,
        "portal/member_remove.html",
        team,
        section="members",
        membership=membership,
        leaving=leaving,
    )

"""A team's members: list, add, change role, remove. Leads manage members and viewers; owners
also grant and take away the lead and owner roles (tenants.roles.may_grant)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from tenants import services
from tenants.models import Membership, Team
from tenants.roles import RANK, Action, may_grant

from .. import access, forms, selectors
from .common import render


def _grantable(user, team: Team) -> list[str]:
    """The roles this user may give, highest first."""
    roles = sorted(RANK, key=RANK.__getitem__, reverse=True)
    return [r for r in roles if may_grant(user, team, r)]


def _errors(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
@require_http_methods(["GET", "POST"])
def member_list(request: HttpRequest, team_slug: str) -> HttpResponse:
    team = access.team_or_404(request.user, team_slug)
    grantable = _grantable(request.user, team)
    form = None
    if access.can_manage_members(request.user, team):
        form = forms.MemberAddForm(request.POST or None, roles=grantable)
    elif request.method == "POST":
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
    rows = [
        (m, access.may_change_member(request.user, team, m), m.user_id == request.user.pk)
        for m in selectors.members(team)
    ]
    return render(
        request,
        "portal/members.html",
        team,
        section="members",
        rows=rows,
        form=form,
        grantable=[(r, Membership.Role(r).label) for r in grantable],
        status=400 if form is not None and form.errors else 200,
    )


def _changeable(request: HttpRequest, team_slug: str, membership_id: int):
    team = access.team_or_404(request.user, team_slug)
    membership = access.membership_or_404(team, membership_id)
    access.require(request.user, Action.MEMBERS_MANAGE, team)
    if not access.may_change_member(request.user, team, membership):
        raise PermissionDenied
    return team, membership


@login_required
@require_POST
def member_role(request: HttpRequest, team_slug: str, membership_id: int) -> HttpResponse:
    team, membership = _changeable(request, team_slug, membership_id)
    form = forms.MemberRoleForm(request.POST, roles=_grantable(request.user, team))
    if not form.is_valid():
        raise PermissionDenied  # a role the user may not grant (the form offers none)
    try:
        services.membership_role_set(
            membership=membership, role=form.cleaned_data["role"], actor=request.user
        )
    except ValidationError as exc:
        messages.error(request, _errors(exc))
    else:
        messages.success(
            request, f"{membership.user.get_username()} is now {form.cleaned_data['role']}."
        )
    return redirect("portal:members", team_slug=team.slug)


@login_required
@require_http_methods(["GET", "POST"])
def member_remove(request: HttpRequest, team_slug: str, membership_id: int) -> HttpResponse:
    team, membership = _changeable(request, team_slug, membership_id)
    if request.method == "POST":
        try:
            services.membership_remove(membership=membership, actor=request.user)
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        else:
            messages.success(request, f"{membership.user.get_username()} left {team.name}.")
        if membership.user_id == request.user.pk:
            return redirect("portal:home")
        return redirect("portal:members", team_slug=team.slug)
    return render(
        request, "portal/member_remove.html", team, section="members", membership=membership
    )

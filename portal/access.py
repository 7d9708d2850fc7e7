"""Scoping for every portal view: what the signed-in user may see, and may do.

The rule (tenants/roles.py): an object outside the user's teams is a 404, never a 403, so a page
never confirms that another team, key or membership exists; inside the team, an action the
role may not do is a 403. Views look objects up only through these functions.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from tenants.models import ApiKey, Membership, Team
from tenants.roles import Action, can, may_grant, role_of, teams_in_scope, teams_of


def switcher_teams(user) -> QuerySet[Team]:
    """The teams the switcher lists: the user's own; every team for a platform admin."""
    return teams_in_scope(user).order_by("name", "slug")


def first_team(user) -> Team | None:
    return teams_of(user).order_by("name", "slug").first() or switcher_teams(user).first()


def team_or_404(user, slug: str) -> Team:
    return get_object_or_404(teams_in_scope(user).select_related("organization"), slug=slug)


def key_or_404(team: Team, key_id: int) -> ApiKey:
    return get_object_or_404(
        ApiKey.objects.select_related("owner", "project"), team=team, pk=key_id
    )


def membership_or_404(team: Team, membership_id: int) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user"), team=team, pk=membership_id)


def require(user, action: Action, team: Team, *, key: ApiKey | None = None) -> None:
    if not can(user, action, team, key=key):
        raise PermissionDenied


def may_manage_key(user, team: Team, key: ApiKey) -> bool:
    return can(user, Action.KEY_MANAGE_OWN, team, key=key)


def role_label(user, team: Team) -> str:
    role = role_of(user, team)
    if role is None:  # pragma: no cover - team_or_404 lets no outsider this far
        raise Http404
    return Membership.Role(role).label


def can_manage_members(user, team: Team) -> bool:
    return can(user, Action.MEMBERS_MANAGE, team)


def may_change_member(user, team: Team, membership: Membership) -> bool:
    """Whether the user may change or remove this membership: the role it holds must be one
    the user may grant (a lead cannot demote or remove an owner)."""
    return can_manage_members(user, team) and may_grant(user, team, membership.role)

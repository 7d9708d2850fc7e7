"""Scoping for every portal view: what the signed-in user may see, and may do.

The rule (tenants/roles.py): an object outside the user's teams is a 404, never a 403, so a page
never confirms that another team, key or membership exists; inside the team, an action the
role may not do is a 403. Views look objects up only through these functions.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from tenants import roles
from tenants.models import ApiKey, Membership, Team
from tenants.roles import RANK, Action, can, teams_in_scope, teams_of

ROLES_DESC = sorted(RANK, key=RANK.__getitem__, reverse=True)


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


def may_set_role(user, team: Team, membership: Membership, new: str | None) -> bool:
    """Whether the user may move this membership to role `new` (None: remove it). Leads manage
    members and viewers and appoint leads; owners also handle owners and demote leads; anyone
    may step down or leave (tenants.roles.may_set_role)."""
    return roles.may_set_role(user, team, current=membership.role, new=new, target=membership.user)


def role_options(user, team: Team, membership: Membership) -> list[str]:
    """The roles the user may give this membership, its current one included, highest first."""
    return [
        r for r in ROLES_DESC if r == membership.role or may_set_role(user, team, membership, r)
    ]


def grantable(user, team: Team) -> list[str]:
    """The roles the user may add someone with, highest first."""
    return [r for r in ROLES_DESC if roles.may_grant(user, team, r)]

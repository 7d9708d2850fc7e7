"""Tenant scoping for the API views: an object outside the caller's teams is a 404, never a
403 (its existence is none of their business); inside, an action the role may not do is 403.
"""

from django.http import Http404
from rest_framework.exceptions import PermissionDenied

from tenants.models import ApiKey, Membership, Team
from tenants.roles import Action, can, teams_in_scope


def team_for(user, slug: str) -> Team:
    team = teams_in_scope(user).filter(slug=slug).select_related("organization").first()
    if team is None:
        raise Http404
    return team


def key_for(team: Team, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(team=team, pk=key_id).select_related("owner", "project").first()
    if key is None:
        raise Http404
    return key


def membership_for(team: Team, membership_id: int) -> Membership:
    found = Membership.objects.filter(team=team, pk=membership_id).select_related("user").first()
    if found is None:
        raise Http404
    return found


def require(user, action: Action, team: Team, *, key: ApiKey | None = None) -> None:
    if not can(user, action, team, key=key):
        raise PermissionDenied(f"your role in team '{team.slug}' does not allow this")

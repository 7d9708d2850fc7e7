"""What every team page shares: the team switcher, the viewer's role and what it allows."""

from django.http import HttpRequest
from django.template.response import TemplateResponse

from tenants.models import Team
from tenants.roles import Action, can, role_of

from .. import access


def team_context(request: HttpRequest, team: Team) -> dict:
    user = request.user
    role = role_of(user, team)
    return {
        "team": team,
        "switcher": access.switcher_teams(user),
        "role": role,
        "may": {
            "create_key": can(user, Action.KEY_CREATE_OWN, team),
            "manage_any_key": can(user, Action.KEY_MANAGE_ANY, team),
            "manage_members": can(user, Action.MEMBERS_MANAGE, team),
        },
    }


def render(
    request: HttpRequest, template: str, team: Team, status: int = 200, **context
) -> TemplateResponse:
    return TemplateResponse(
        request, template, {**team_context(request, team), **context}, status=status
    )

"""The landing page and a team's page: budget, spend, burn-down and the analytics charts of the
current month (billing/analytics_report.py, the same report as /teams/<slug>/analytics/)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from billing import analytics_report

from .. import access, selectors
from .common import render


@login_required
def home(request: HttpRequest) -> HttpResponse:
    team = access.first_team(request.user)
    if team is None:
        return TemplateResponse(request, "portal/no_team.html", {"switcher": []})
    return redirect("portal:team", team_slug=team.slug)


@login_required
def team(request: HttpRequest, team_slug: str) -> HttpResponse:
    team = access.team_or_404(request.user, team_slug)
    period = selectors.current_period()
    return render(
        request,
        "portal/team.html",
        team,
        section="overview",
        period=period,
        summary=selectors.team_summary(team=team, period=period),
        report=analytics_report.build(period=period, team=team),
    )

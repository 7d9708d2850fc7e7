"""The analytics pages: the admin's (every team, a team filter) and a team's own (its members
only). Thin: parse the period, pick the team the caller may see, build the report
(billing/analytics_report.py), render it as HTML or CSV."""

import csv

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from tenants.models import Team

from . import analytics_report
from .analytics import Period, PeriodError

# Who may open the admin's analytics: the rollups' view permission (superusers have it).
ADMIN_PERMISSION = "billing.view_dailyusage"
# A cell starting with one of these is a formula to a spreadsheet; model names and tags are
# user input, so such a cell is prefixed with a quote (OWASP's CSV injection advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    if value.startswith(_FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _csv(report: analytics_report.Report) -> HttpResponse:
    scope = report.team.slug if report.team else "all-teams"
    name = f"analytics-{scope}-{report.period.start}-{report.period.end}.csv"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(analytics_report.CSV_COLUMNS)
    for row in report.csv_rows:
        writer.writerow([_csv_cell(cell) for cell in row])
    return response


def _render(request: HttpRequest, template: str, context: dict, team: Team | None):
    try:
        period = Period.parse(request.GET.get("start"), request.GET.get("end"))
    except PeriodError as exc:
        context.update(error=f"Invalid period: {exc}.", period=Period.current_month())
        return TemplateResponse(request, template, context, status=400)
    report = analytics_report.build(period=period, team=team)
    if request.GET.get("format") == "csv":
        return _csv(report)
    query = request.GET.copy()
    query["format"] = "csv"
    context.update(report=report, period=period, csv_query=query.urlencode())
    return TemplateResponse(request, template, context)


@login_required
def team_analytics(request: HttpRequest, team_slug: str) -> HttpResponse:
    """A team's own numbers, for its members. Another team's page (or an unknown slug) is a
    404, not a 403: a page must not confirm that a team exists to someone outside it."""
    team = get_object_or_404(Team.objects.for_user(request.user), slug=team_slug)
    context = {"team": team, "title": f"Analytics: {team.name}"}
    return _render(request, "analytics/team.html", context, team)


def admin_analytics(request: HttpRequest) -> HttpResponse:
    """Every team's numbers, or one team's (?team=<slug>). Mounted behind admin_view, which
    sends anonymous and non-staff users to the admin login."""
    if not request.user.has_perm(ADMIN_PERMISSION):
        raise PermissionDenied
    team = None
    slug = request.GET.get("team") or ""
    if slug:
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            raise Http404(f"No team '{slug}'.")
    context = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "team": team,
        "teams": Team.objects.order_by("slug").values_list("slug", flat=True),
    }
    return _render(request, "admin/analytics.html", context, team)

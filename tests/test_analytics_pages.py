"""The analytics pages over HTTP (Django's test client): who may see what, the period picker,
the CSV export and the escaping of user-supplied names."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from policies.models import Policy

from .factories import DailyUsageFactory, UserFactory

PERIOD = {"start": "2026-11-01", "end": "2026-11-30"}
TEAM_PAGE = "/teams/{}/analytics/"


@pytest.fixture
def usage(team, other_team):
    """Two teams' rollups; the model names tell them apart."""
    return [
        DailyUsageFactory(team=team, day=date(2026, 11, 2), model="search-model", cost_usd="1.5"),
        DailyUsageFactory(team=team, day=date(2026, 11, 3), model="search-model", cost_usd="2.25"),
        DailyUsageFactory(
            team=team, day=date(2026, 11, 3), model="=HYPERLINK(1)", cost_usd="0.125"
        ),
        DailyUsageFactory(team=other_team, day=date(2026, 11, 2), model="ads-model", cost_usd="7"),
    ]


def staff(*, perm: bool, username: str = "analyst"):
    user = UserFactory(username=username, is_staff=True)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="view_dailyusage"))
    return user


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


# --- The team page -------------------------------------------------------------------------------
def test_anonymous_visitors_are_sent_to_the_login_page(client, team):
    response = client.get(TEAM_PAGE.format("search"))
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/teams/search/analytics/"


def test_a_member_signs_in_and_lands_on_the_team_page(client, member, usage):
    member.set_password("pw-for-tests")
    member.save()
    response = client.post(
        "/accounts/login/",
        {"username": "member", "password": "pw-for-tests", "next": TEAM_PAGE.format("search")},
    )
    assert response.status_code == 302 and response["Location"] == TEAM_PAGE.format("search")
    assert client.get(response["Location"]).status_code == 200


def test_a_member_sees_only_their_teams_numbers(client, member, usage):
    client.force_login(member)
    response = client.get(TEAM_PAGE.format("search"), PERIOD)
    assert response.status_code == 200
    html = response.content.decode()
    assert "search-model" in html and "$2.2500" in html
    assert "ads-model" not in html and "$7.0000" not in html
    assert 'id="section-burn"' in html  # a team page has its burn-down


def test_another_teams_page_and_an_unknown_team_are_404(client, member, outsider, usage):
    client.force_login(outsider)
    assert client.get(TEAM_PAGE.format("search"), PERIOD).status_code == 404
    assert client.get(TEAM_PAGE.format("search"), {**PERIOD, "format": "csv"}).status_code == 404
    client.force_login(member)
    assert client.get(TEAM_PAGE.format("no-such-team")).status_code == 404


def test_a_bad_period_is_a_400_that_says_why(client, member):
    client.force_login(member)
    response = client.get(TEAM_PAGE.format("search"), {"start": "2026-11-31"})
    assert response.status_code == 400
    assert "Invalid period: start and end must be dates written YYYY-MM-DD" in (
        response.content.decode()
    )
    response = client.get(TEAM_PAGE.format("search"), {"start": "2026-11-05", "end": "2026-11-01"})
    assert response.status_code == 400 and "is after end" in response.content.decode()


def test_a_period_without_usage_shows_empty_states(client, member):
    client.force_login(member)
    html = client.get(TEAM_PAGE.format("search"), PERIOD).content.decode()
    assert "No usage in this period." in html
    assert html.count("No data for this period.") >= 5


def test_user_supplied_names_are_escaped(client, member, team):
    DailyUsageFactory(team=team, model='<script>alert("x")</script>', cost_usd="1")
    client.force_login(member)
    html = client.get(TEAM_PAGE.format("search"), PERIOD).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html


# --- CSV -----------------------------------------------------------------------------------------
def test_csv_export_holds_the_same_numbers(client, member, team, usage):
    Policy.objects.create(team=team, monthly_budget_usd=Decimal("90"))
    client.force_login(member)
    response = client.get(TEAM_PAGE.format("search"), {**PERIOD, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="analytics-search-2026-11-01-2026-11-30.csv"'
    )
    rows = read_csv(response)
    assert list(rows[0]) == ["section", "team", "day", "series", "metric", "value"]
    cost = [r for r in rows if r["section"] == "daily_cost"]
    mine = [u for u in usage if u.team == team]
    assert sum(Decimal(r["value"]) for r in cost) == sum(Decimal(u.cost_usd) for u in mine)
    assert {r["team"] for r in rows} == {"search"}
    assert "ads-model" not in response.content.decode()
    # A model name shaped like a formula is quoted so that a spreadsheet shows it as text.
    assert {r["series"] for r in cost} == {"search-model", "'=HYPERLINK(1)"}
    budget = [r for r in rows if r["section"] == "burn_down" and r["series"] == "budget"]
    assert [Decimal(r["value"]) for r in budget] == [Decimal(90)]
    top = [r for r in rows if r["section"] == "top_keys" and r["metric"] == "cost_usd"]
    assert sum(Decimal(r["value"]) for r in top) == sum(Decimal(u.cost_usd) for u in mine)


# --- The admin page ------------------------------------------------------------------------------
def test_admin_analytics_needs_staff_and_the_permission(client, usage):
    response = client.get("/admin/analytics/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    client.force_login(staff(perm=False))
    assert client.get("/admin/analytics/").status_code == 403
    client.force_login(UserFactory(username="not-staff"))
    assert client.get("/admin/analytics/").status_code == 302


def test_admin_sees_every_team_and_can_filter_one(client, usage):
    client.force_login(staff(perm=True))
    html = client.get("/admin/analytics/", PERIOD).content.decode()
    assert "search-model" in html and "ads-model" in html
    assert "Daily cost of team ads, by model" in html
    assert "Choose a team to see its budget burn-down." in html
    html = client.get("/admin/analytics/", {**PERIOD, "team": "ads"}).content.decode()
    assert "ads-model" in html and "search-model" not in html
    assert client.get("/admin/analytics/", {"team": "nope"}).status_code == 404


def test_admin_csv_covers_every_team(client, usage):
    client.force_login(staff(perm=True))
    response = client.get("/admin/analytics/", {**PERIOD, "format": "csv"})
    assert (
        'filename="analytics-all-teams-2026-11-01-2026-11-30.csv"'
        in (response["Content-Disposition"])
    )
    cost = [r for r in read_csv(response) if r["section"] == "daily_cost"]
    assert sum(Decimal(r["value"]) for r in cost) == sum(Decimal(u.cost_usd) for u in usage)


def test_admin_index_links_to_analytics_for_those_allowed(client, db):
    client.force_login(staff(perm=True))
    assert 'href="/admin/analytics/"' in client.get("/admin/").content.decode()
    client.force_login(staff(perm=False, username="other-staff"))
    assert 'href="/admin/analytics/"' not in client.get("/admin/").content.decode()


def test_signing_in_without_a_target_lands_on_the_portal(client, member):
    member.set_password("pw-for-tests")
    member.save()
    response = client.post("/accounts/login/", {"username": "member", "password": "pw-for-tests"})
    # The portal opens the member's first team, which links to this page.
    assert response.status_code == 302 and response["Location"] == "/portal/"


def test_member_login_is_throttled_like_the_admins(client, member, settings):
    settings.GATEWAY_ADMIN_LOGIN_RATE = "2/m"
    for _ in range(2):
        client.post("/accounts/login/", {"username": "member", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "member", "password": "wrong"})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1


def test_an_end_date_alone_means_its_month_up_to_it(client, member, team):
    DailyUsageFactory(team=team, day=date(2026, 10, 7), model="october-model")
    client.force_login(member)
    response = client.get(TEAM_PAGE.format("search"), {"end": "2026-10-09"})
    html = response.content.decode()
    assert response.status_code == 200 and "october-model" in html
    assert "Period 2026-10-01 to 2026-10-09" in html

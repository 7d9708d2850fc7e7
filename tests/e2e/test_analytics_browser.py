"""The analytics pages in a real browser: Debian's chromium driven by Playwright, against the
gateway's ASGI app on a socket (the e2e harness) and the real Postgres test database.

They check what a reader gets, from the DOM the browser built: the SVG marks and legends, the
tables' numbers, and which team's numbers appear at all; never pixels.
"""

import os
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import Page, sync_playwright

from policies.models import Policy
from tests.factories import DailyUsageFactory, MembershipFactory, TeamFactory, UserFactory

CHROMIUM = "/usr/bin/chromium"
PERIOD = "start=2026-11-01&end=2026-11-30"
PASSWORD = "browser-test-password"
BUCKETS = 31


@pytest.fixture
def page():
    """A fresh browser per test. Tests list it after their data fixtures: Playwright's sync API
    runs an event loop in this thread, and Django refuses ORM calls while one runs."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser.new_page()
        browser.close()


def hist_at(index: int, count: int) -> list[int]:
    counts = [0] * BUCKETS
    counts[index] = count
    return counts


@pytest.fixture
def two_teams(transactional_db):
    search = TeamFactory(slug="search")
    ads = TeamFactory(slug="ads")
    Policy.objects.create(team=search, monthly_budget_usd=Decimal("60"))
    rows = [
        DailyUsageFactory(team=search, day=date(2026, 11, 2), model="gpt-search",
                          cost_usd="1.5", requests=90, latency_hist=hist_at(11, 90),
                          errors=3, errors_by_type={"rate_limit_exceeded": 3}),
        DailyUsageFactory(team=search, day=date(2026, 11, 2), model="claude-search",
                          cost_usd="0.5", requests=10, latency_hist=hist_at(15, 10)),
        DailyUsageFactory(team=search, day=date(2026, 11, 3), model="gpt-search",
                          cost_usd="2.25", requests=40, latency_hist=hist_at(12, 40),
                          errors=2, errors_by_type={"upstream_error": 2}),
        DailyUsageFactory(team=ads, day=date(2026, 11, 2), model="ads-secret-model",
                          cost_usd="777", requests=5, latency_hist=hist_at(20, 5)),
    ]  # fmt: skip
    return search, ads, rows


def sign_in(page: Page, base: str, target: str, username: str) -> None:
    """Open `target` signed out, follow the redirect to the login form, sign in."""
    page.goto(base + target)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_load_state()


def user(username: str, **kwargs):
    u = UserFactory(username=username, **kwargs)
    u.set_password(PASSWORD)
    u.save()
    return u


@pytest.fixture
def reader(two_teams):
    return MembershipFactory(team=two_teams[0], user=user("reader")).user


@pytest.fixture
def analyst(transactional_db):
    analyst = user("analyst", is_staff=True)
    analyst.user_permissions.add(Permission.objects.get(codename="view_dailyusage"))
    return analyst


def table_cells(page: Page, table_id: str) -> list[list[str]]:
    return page.eval_on_selector(
        f"#{table_id}",
        "t => [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent.trim()))",
    )


def test_team_page_draws_its_charts_and_tables(gateway_server, two_teams, reader, page):
    search, _, rows = two_teams
    sign_in(page, gateway_server, f"/teams/search/analytics/?{PERIOD}", "reader")
    assert page.url.endswith(f"/teams/search/analytics/?{PERIOD}")

    cost = page.locator("svg#cost-0")
    assert cost.get_attribute("role") == "img"
    assert cost.locator("title#cost-0-title").text_content() == (
        "Daily cost of team search, by model"
    )
    # One bar segment per (day, model) with a cost, each carrying its number.
    bars = cost.locator("rect.bar")
    assert bars.count() == len([r for r in rows if r.team == search])
    drawn = {
        (b.get_attribute("data-label"), b.get_attribute("data-series")): b.get_attribute(
            "data-value"
        )
        for b in bars.all()
    }
    assert drawn == {("11-02", "gpt-search"): "1.5", ("11-02", "claude-search"): "0.5",
                     ("11-03", "gpt-search"): "2.25"}  # fmt: skip
    legend = [t.strip() for t in cost.locator(".legend-item text").all_text_contents()]
    assert legend == ["gpt-search", "claude-search"]  # by cost, largest first
    assert bars.first.locator("title").text_content().startswith("gpt-search, 11-02: $")

    # The table beside it: a row per day, the day's total in the last column.
    cells = {row[0]: row for row in table_cells(page, "table-cost-0")}
    assert cells["2026-11-02"][1:] == ["$1.5000", "$0.5000", "$2.0000"]
    assert cells["2026-11-03"][-1] == "$2.2500"
    assert len(cells) == 30

    # Latency: p50 and p95 lines; the 2nd's p95 comes from the merged histogram (90 fast +
    # 10 slow requests: rank 95 falls in the slow ones' 300-500 ms bucket).
    assert page.locator("svg#latency g.series").count() == 2
    latency = {row[0]: row for row in table_cells(page, "table-latency")}
    assert latency["2026-11-02"] == ["2026-11-02", "100", "88.9 ms", "400.0 ms"]

    # Errors: a line per type plus all errors; 3 of 100 requests were rate-limited on the 2nd.
    series = page.locator("svg#errors g.series")
    assert [s.get_attribute("data-series") for s in series.all()] == [
        "rate_limit_exceeded", "upstream_error", "all errors"
    ]  # fmt: skip
    errors = {row[0]: row for row in table_cells(page, "table-errors")}
    assert errors["2026-11-02"][1:] == ["100", "3", "3.00%", "0.00%", "3.00%"]
    assert errors["2026-11-03"][1:] == ["40", "2", "0.00%", "5.00%", "5.00%"]

    # Burn-down against the 60 USD budget: spent, ideal and budget lines.
    burn = page.locator("svg#burn g.series")
    assert [s.get_attribute("data-series") for s in burn.all()] == ["spent", "ideal", "budget"]
    burn_rows = {row[0]: row for row in table_cells(page, "table-burn")}
    assert burn_rows["2026-11-03"][1:] == ["$4.2500", "$6.0000", "$60.0000"]

    # Nothing of the other team anywhere on the page.
    content = page.content()
    assert "ads-secret-model" not in content and "$777" not in content


def test_another_teams_page_is_404_in_the_browser(gateway_server, reader, page):
    sign_in(page, gateway_server, f"/teams/search/analytics/?{PERIOD}", "reader")
    response = page.goto(f"{gateway_server}/teams/ads/analytics/?{PERIOD}")
    assert response.status == 404
    assert "ads-secret-model" not in page.content()


def test_admin_page_shows_every_team_and_filters_one(gateway_server, two_teams, analyst, page):
    sign_in(page, gateway_server, f"/admin/analytics/?{PERIOD}", "analyst")
    assert page.url.endswith(f"/admin/analytics/?{PERIOD}")
    titles = page.locator("svg.chart > title").all_text_contents()
    assert "Daily cost of team ads, by model" in titles
    assert "Daily cost of team search, by model" in titles
    assert page.locator("svg#cost-0 rect.bar").get_attribute("data-series") == "ads-secret-model"

    # The team filter, through the form as a person would use it.
    page.select_option("select[name=team]", "search")
    page.click("form.analytics-form button[type=submit]")
    page.wait_for_load_state()
    assert "team=search" in page.url
    assert page.locator("svg[id^=cost-]").count() == 1
    assert "ads-secret-model" not in page.content()

    csv_href = page.get_attribute("#csv-export", "href")
    response = page.request.get(gateway_server + "/admin/analytics/" + csv_href)
    assert response.status == 200
    assert (
        'filename="analytics-search-2026-11-01-2026-11-30.csv"'
        in (response.headers["content-disposition"])
    )
    body = response.text()
    assert "daily_cost,search,2026-11-03,gpt-search,cost_usd,2.25" in body
    assert "ads-secret-model" not in body

"""The admin console in a real browser (Debian's chromium, Playwright) at 1366 x 900: the index's
dashboard, and the request log whose key columns (status, cost, latency) are on screen without
scrolling sideways. The theme's CSS is served from the static finders (tests run no
collectstatic), so what is measured is the layout a user gets.

With ADMIN_SCREENSHOTS=<dir>, the pages are also saved there as PNGs (docs/images/admin-*.png).
"""

import mimetypes
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.utils import timezone

from billing.models import UsageRecord
from tests.e2e.test_analytics_browser import CHROMIUM, sign_in, user
from tests.factories import TeamFactory

WIDTH, HEIGHT = 1366, 900


def _serve_static(route) -> None:
    path = route.request.url.split("/static/", 1)[1].split("?", 1)[0]
    found = finders.find(path)
    if not found:
        route.fulfill(status=404, body="")
        return
    kind = mimetypes.guess_type(found)[0] or "application/octet-stream"
    route.fulfill(status=200, body=Path(found).read_bytes(), headers={"Content-Type": kind})


@pytest.fixture
def wide_page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.route("**/static/**", _serve_static)
        yield page
        browser.close()


@pytest.fixture
def traffic(transactional_db):
    team = TeamFactory(slug="search-platform")
    now = timezone.now()
    for i in range(30):
        UsageRecord.objects.create(
            request_id=f"req-browser-{i}",
            created_at=now,
            team=team,
            team_slug=team.slug,
            key_prefix="sk-gw-AbCd1234",
            endpoint="chat.completions",
            requested_model="claude-3-5-sonnet-20241022" if i % 2 else "gpt-4o-mini",
            provider_name="anthropic-eu" if i % 2 else "openai-us",
            status_code=502 if i % 10 == 0 else 200,
            input_tokens=1200 + i,
            output_tokens=340 + i,
            cost_usd=Decimal("0.0123") + Decimal(i) / 1000,
            latency_ms=800.0 + i * 10,
        )
    return team


def _shoot(page, name: str) -> None:
    folder = os.environ.get("ADMIN_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"admin-{name}.png"))


@pytest.fixture
def operator(transactional_db):
    return user("operator", is_staff=True, is_superuser=True)


# The data fixtures before the browser: Playwright's sync API runs an event loop in this
# thread, and Django refuses ORM calls while one runs.
def test_admin_index_and_request_log_fit_1366_pixels(gateway_server, traffic, operator, wide_page):
    page = wide_page
    sign_in(page, gateway_server, "/admin/", operator.username)
    assert page.locator("#spend-today").text_content().strip().startswith("$")
    assert page.locator("#requests-today").text_content().strip() == "30"
    assert page.locator("#errors-today").text_content().strip() == "3"
    _shoot(page, "index")

    page.goto(gateway_server + "/admin/billing/usagerecord/")
    page.wait_for_load_state()
    for column in ("status", "cost", "latency"):
        header = page.locator(f"th.column-{column}").first
        box = header.bounding_box()
        assert box is not None, column
        assert box["x"] + box["width"] <= WIDTH, f"{column} is off screen at {WIDTH} px"
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= WIDTH
    assert "$0.0123" in page.content()
    _shoot(page, "request-log")

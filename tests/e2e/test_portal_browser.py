"""A team lead's round trip through the portal in a real browser (Debian's chromium driven by
Playwright), against the gateway's ASGI app on a socket and the fake upstream: sign in, create
a key, copy it, call the gateway with it, see the call in the keys' usage, revoke it, see the
call refused.

Set GATEWAY_SCREENSHOTS_DIR to write the documentation's screenshots (portal-*.png, 1366x900)
there along the way; without it none are taken, so a test run never rewrites docs/images.
"""

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, sync_playwright

from billing.models import LATENCY_BUCKETS_MS
from billing.rollups import rollup_usage
from policies.models import Policy
from tenants.models import Membership
from tests.factories import DailyUsageFactory, UserFactory
from tests.fake_upstream import COMPLETION_TOKENS, PROMPT_TOKENS

from .support import Gateway, expected_cost, wait_for_usage_records

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "portal-browser-password"
STATIC = Path(__file__).resolve().parents[2] / "portal" / "static"
SHOTS = os.environ.get("GATEWAY_SCREENSHOTS_DIR", "")
SECRET = re.compile(r"^sk-gw-[A-Za-z0-9_-]{43}$")
pytestmark = pytest.mark.django_db(transaction=True)


def off_loop(fn, *args, **kwargs):
    """Run ORM work on another thread: Playwright's sync API keeps an event loop running in
    this one, and Django refuses database calls from a thread with a running loop."""

    def run():
        try:
            return fn(*args, **kwargs)
        finally:
            # The thread's own connection, or the test database cannot be dropped at the end.
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


@pytest.fixture
def lead(gateway: Gateway):
    user = UserFactory(username="dana", email="dana@example.com", first_name="Dana")
    user.set_password(PASSWORD)
    user.save()
    Membership.objects.create(team=gateway.team, user=user, role="lead")
    for name, role in (("sam", "member"), ("alex", "viewer")):
        Membership.objects.create(team=gateway.team, user=UserFactory(username=name), role=role)
    # Some history, so the team page has charts to draw (days before today: a rollup run
    # recomputes only the days of newly ingested requests, today's).
    today = timezone.now().date()
    for n in range(1, min(today.day, 12)):
        day = today - timedelta(days=n)
        DailyUsageFactory(team=gateway.team, day=day, model="chat-fast", requests=40 + n,
                          cost_usd=f"{0.8 + 0.05 * n:.2f}", latency_hist=hist(11, 40 + n),
                          errors=n % 3, errors_by_type={"rate_limit_exceeded": n % 3})  # fmt: skip
        DailyUsageFactory(team=gateway.team, day=day, model="chat-ha", requests=10,
                          cost_usd=f"{0.3 + 0.02 * n:.2f}", latency_hist=hist(14, 10))  # fmt: skip
    Policy.objects.update_or_create(team=gateway.team, defaults={"monthly_budget_usd": 40})
    return user


def hist(bucket: int, count: int) -> list[int]:
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    counts[bucket] = count
    return counts


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        # The test server does not run collectstatic (production does: make run, the image);
        # serve the portal's own files from the source tree.
        page.route("**/static/portal/*", _serve_static)
        yield page
        browser.close()


def _serve_static(route) -> None:
    name = route.request.url.rsplit("/static/", 1)[1].split("?")[0]
    route.fulfill(path=str(STATIC / name))


def shoot(page: Page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"portal-{name}.png"))


def key_row(page: Page, name: str):
    return page.locator("#keys-table tbody tr", has=page.locator("th", has_text=name))


def call(gateway: Gateway, secret: str):
    return gateway.client(key=secret).chat.completions.create(
        model="chat-fast", messages=[{"role": "user", "content": "Hello"}]
    )


def test_a_lead_creates_uses_and_revokes_a_key(gateway, upstream, lead, page):
    base = gateway.url
    page.goto(base + "/portal/login/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/portal/teams/{gateway.team.slug}/")
    assert page.locator("h1").text_content() == gateway.team.name
    assert page.locator("svg#burn").count() == 1
    shoot(page, "team")

    # Create a key; the secret is on the page once, and the copy button puts it on the clipboard.
    page.get_by_role("link", name="API keys").click()
    page.locator("#new-key").click()
    page.get_by_label("Name").fill("checkout-service")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_selector("#secret")
    shown = page.locator("#secret").input_value()
    assert SECRET.match(shown)
    page.locator("#copy-secret").click()
    page.wait_for_function("document.querySelector('#copy-secret').dataset.copied === 'yes'")
    secret = page.evaluate("navigator.clipboard.readText()")
    assert secret == shown
    assert f'base_url="{base}/v1"' in page.locator("#snippet-python").text_content()
    shoot(page, "key-created")

    # The key works against the gateway, and its call shows up in the keys' usage once
    # ingested and rolled up.
    reply = call(gateway, secret)
    assert reply.choices[0].message.content
    off_loop(wait_for_usage_records, 1)
    off_loop(rollup_usage)
    page.get_by_role("link", name="Done: back to the keys").click()
    row = key_row(page, "checkout-service")
    assert row.locator(".key-requests").text_content().strip() == "1"
    spend = row.locator(".key-spend")
    cost = expected_cost("fake-chat-fast", PROMPT_TOKENS, COMPLETION_TOKENS)
    assert Decimal(spend.get_attribute("data-usd")) == cost
    assert spend.text_content().strip() == "<$0.0001"  # a few millionths, not "$0.0000"
    assert row.locator(".badge").text_content() == "active"
    assert secret not in page.content()
    shoot(page, "keys")

    # Revoke, after the confirmation step; the gateway then refuses the key.
    row.get_by_role("link", name="Revoke").click()
    page.locator("#confirm-revoke").click()
    page.wait_for_url(f"{base}/portal/teams/{gateway.team.slug}/keys/")
    assert "is revoked" in page.locator(".messages").text_content()
    assert key_row(page, "checkout-service").locator(".badge").text_content() == "revoked"
    deadline = time.monotonic() + 10  # the key cache's local TTL, with slack
    while True:
        try:
            call(gateway, secret)
        except openai.AuthenticationError as exc:
            assert exc.status_code == 401
            break
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)

    page.get_by_role("link", name="Members").click()
    assert page.locator("#members-table tbody tr").count() == 3
    shoot(page, "members")


def test_the_portal_fits_a_phone_screen(gateway, lead, page):
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(gateway.url + "/portal/login/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{gateway.url}/portal/teams/{gateway.team.slug}/")
    for path in ("", "members/", "keys/"):
        page.goto(f"{gateway.url}/portal/teams/{gateway.team.slug}/{path}")
        # No horizontal scrolling: the page is no wider than the screen.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
    shoot(page, "phone-keys")

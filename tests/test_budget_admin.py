"""The admin's budget pages: the overview (limit, spend, live counter, reservations, alerts) and
the read-only ledger and alert record."""

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse

from billing.budget_check import budget_check
from billing.budgets import budget_stem
from billing.models import BudgetAlert, BudgetOverview, SpendLedger
from infra.state import get_state
from policies.budget_keys import bucket_of, reservation_key, spent_key
from policies.periods import period_of

from .factories import OrganizationFactory, TeamFactory
from .helpers_budgets import budget_policy, usage
from .helpers_proc import free_port

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

WEBHOOK = "https://hooks.example.com/services/T/B/admin-secret-token"


@pytest.fixture
def budget(db):
    org = OrganizationFactory(slug="acme", timezone="Asia/Tokyo")
    team = TeamFactory(slug="search", organization=org)
    policy = budget_policy(
        WEBHOOK, team=team, monthly_budget_usd=Decimal("50"), alert_thresholds=[10]
    )
    TeamFactory(slug="unbudgeted", organization=org)
    budget_policy(team=TeamFactory(slug="limits-only", organization=org), rpm=10)
    now = time.time()
    usage(cost="7.25", when=datetime.fromtimestamp(now, UTC), team=team)
    report = budget_check(now)
    (alert,) = report.alerts
    BudgetAlert.objects.filter(pk=alert.pk).update(webhook_status="sent")
    period = period_of(now, "Asia/Tokyo")
    stem = budget_stem("team", team.pk)
    client = get_state().sync_client
    client.incrby(spent_key(stem, period), 1_500_000)  # settled, not ingested yet
    client.set(reservation_key(stem, period, bucket_of(now)), 2_340_000)
    return {"team": team, "policy": policy, "period": period}


def _page(admin_client, model, view="changelist", *args) -> str:
    opts = model._meta
    response = admin_client.get(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)
    )
    assert response.status_code == 200
    return response.content.decode()


def test_overview_shows_limit_spend_counter_reservations_and_alerts(admin_client, budget):
    page = _page(admin_client, BudgetOverview)

    assert "team &#x27;search&#x27;" in page
    assert "$50.00" in page  # limit
    assert f"{budget['period']} (Asia/Tokyo)" in page
    assert "$7.25" in page  # ledger
    assert "$8.75" in page  # live counter: ledger + a settle not yet ingested
    assert "$2.34" in page  # reserved now
    assert "10%" in page and "period=" + budget["period"] in page  # alerts sent, linked
    assert "limits-only" not in page and "unbudgeted" not in page  # budgets only
    assert "admin-secret-token" not in page


def test_overview_change_page_renders_one_budget(admin_client, budget):
    page = _page(admin_client, BudgetOverview, "change", budget["policy"].pk)
    assert "$7.25" in page and "$2.34" in page
    assert "admin-secret-token" not in page


def test_overview_says_when_redis_is_unavailable(admin_client, budget, settings):
    get_state.cache_clear()
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    try:
        page = _page(admin_client, BudgetOverview)
    finally:
        get_state.cache_clear()
    assert "Redis unavailable" in page
    assert "$7.25" in page  # the ledger still shows


@pytest.mark.parametrize("model", [SpendLedger, BudgetAlert, BudgetOverview])
def test_budget_records_are_read_only(admin_client, budget, model):
    opts = model._meta
    assert (
        admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code
        == 403
    )
    obj = model.objects.first()
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    assert admin_client.post(url, {}).status_code == 403
    page = _page(admin_client, model, "change", obj.pk)
    assert 'name="_save"' not in page


def test_alert_record_shows_status_and_attempts_never_the_webhook(admin_client, budget):
    alert = BudgetAlert.objects.get()
    page = _page(admin_client, BudgetAlert)
    assert "team &#x27;search&#x27;" in page and "sent" in page
    page = _page(admin_client, BudgetAlert, "change", alert.pk)
    assert "admin-secret-token" not in page

"""The admin as a console: the theme on every page, the actions (through the services, into the
audit trail), big tables listed without COUNT(*), money shown as money, and the index's
dashboard numbers against the data they come from."""

import itertools
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from billing.models import DailyUsage, SpendLedger, UsageRecord
from billing.rollups import rollup_usage
from infra import admin_paging
from infra.money import format_usd
from policies.models import Policy
from policies.periods import period_of
from routing import health
from routing.models import Deployment, DeploymentHealth, HealthCheck
from routing.selectors import routing_table_build
from tenants.models import ApiKey, Membership
from tenants.services import api_key_issue

from .factories import DailyUsageFactory, DeploymentFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")

_ids = itertools.count()


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _record(team=None, *, cost="0.001", status=200, latency=120.0, at=None, **extra) -> UsageRecord:
    return UsageRecord.objects.create(
        request_id=f"req-console-{next(_ids)}",
        created_at=at or timezone.now(),
        team=team,
        team_slug=team.slug if team else "",
        endpoint="chat.completions",
        requested_model="small",
        status_code=status,
        cost_usd=Decimal(cost),
        latency_ms=latency,
        **extra,
    )


# --- The theme ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_changelist_renders_in_the_theme_with_the_gateways_name(admin_client, team):
    _record(team)
    for model in admin.site._registry:
        page = admin_client.get(_url(model, "changelist"))
        assert page.status_code == 200, model._meta.label
        body = page.content.decode()
        assert "unfold/css/styles.css" in body, model._meta.label
        assert "LLM Gateway" in body, model._meta.label


@pytest.mark.django_db
def test_allowed_models_fields_carry_help_text(admin_client, team):
    for url in (_url(ApiKey, "add"), _url(type(team), "change", team.pk)):
        page = admin_client.get(url).content.decode()
        assert "for every model" in page, url


def test_money_is_shown_as_money():
    assert format_usd(Decimal("0.012345000000")) == "$0.0123"
    assert format_usd(Decimal("0.000000000000")) == "$0.00"
    assert format_usd(Decimal("0.5")) == "$0.50"
    assert format_usd(Decimal("1234.5")) == "$1,234.50"
    assert format_usd(Decimal("0.000001234")) == "$0.00000123"
    assert format_usd(Decimal("0.000000000001")) == "<$0.00000001"
    assert format_usd(Decimal("-2.5")) == "-$2.50"
    assert format_usd(None) == "—"


@pytest.mark.django_db
def test_request_log_shows_cost_as_money_and_latency_in_ms(admin_client, team):
    _record(team, cost="0.0123", latency=1234.4)
    _record(team, cost="9", status=503)
    page = admin_client.get(_url(UsageRecord, "changelist") + "?outcome=ok").content.decode()
    assert "$0.0123" in page
    assert "1,234\u00a0ms" in page
    assert "0.012300000000" not in page
    assert "$9.00" not in page  # filtered out: a 503


# --- Big tables: never counted ----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "table"),
    [
        (UsageRecord, "billing_usagerecord"),
        (DailyUsage, "billing_dailyusage"),
        (HealthCheck, "routing_healthcheck"),
        (AuditEvent, "audit_auditevent"),
    ],
)
def test_big_table_changelists_never_count(admin_client, team, model, table):
    _record(team)
    DailyUsageFactory(team=team)
    HealthCheck.objects.create(
        deployment=DeploymentFactory(), at=timezone.now(), ok=True, latency_ms=5
    )
    for query in ("", "?q=small", "?o=-1"):
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(_url(model, "changelist") + query)
        assert response.status_code == 200
        counts = [q["sql"] for q in captured if "COUNT(" in q["sql"] and table in q["sql"]]
        assert counts == [], counts
        assert response.context["cl"].result_count >= 1


@pytest.mark.django_db
def test_paginator_counts_small_results_exactly_and_estimates_big_ones(team, monkeypatch):
    for _ in range(7):
        _record(team)
    rows = UsageRecord.objects.order_by("-created_at")
    assert admin_paging.EstimatedCountPaginator(rows, 5).count == 7
    monkeypatch.setattr(admin_paging, "EXACT_UP_TO", 3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_usagerecord")  # the planner's statistics, as in life
    estimated = admin_paging.EstimatedCountPaginator(rows, 5).count
    assert estimated >= 4  # never less than what it saw
    assert admin_paging.planner_rows(rows) == 7


# --- Actions ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_revoke_action_goes_through_the_service_and_is_audited(admin_client, admin_user, team):
    key = api_key_issue(team=team, name="to-revoke").api_key
    response = admin_client.post(
        _url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    event = AuditEvent.objects.get(
        object_type="tenants.apikey", object_id=str(key.pk), action="revoke"
    )
    assert event.actor == admin_user


@pytest.mark.django_db
def test_disable_and_enable_actions(admin_client, admin_user):
    on, other = DeploymentFactory(), DeploymentFactory()
    url = _url(Deployment, "changelist")
    admin_client.post(url, {"action": "disable_deployments", "_selected_action": [on.pk]})
    on.refresh_from_db()
    other.refresh_from_db()
    assert (on.enabled, other.enabled) == (False, True)
    assert on.pk not in {
        r.deployment_id for routes in routing_table_build().routes.values() for r in routes
    }
    event = AuditEvent.objects.get(object_id=str(on.pk), action="disable")
    assert event.actor == admin_user and event.changes["enabled"] == [True, False]

    admin_client.post(url, {"action": "enable_deployments", "_selected_action": [on.pk]})
    on.refresh_from_db()
    assert on.enabled
    assert AuditEvent.objects.filter(object_id=str(on.pk), action="enable").exists()


@pytest.mark.django_db
def test_health_check_now_probes_only_the_selected_deployments(admin_client):
    chosen, left = DeploymentFactory(), DeploymentFactory()  # mock: their probes succeed
    response = admin_client.post(
        _url(Deployment, "changelist"),
        {"action": "check_health_now", "_selected_action": [chosen.pk]},
        follow=True,
    )
    assert "ok in" in response.content.decode()
    row = DeploymentHealth.objects.get(deployment=chosen)
    assert row.state == health.CLOSED and row.last_ok_at is not None
    assert HealthCheck.objects.filter(deployment=chosen, ok=True).count() == 1
    assert not DeploymentHealth.objects.filter(deployment=left).exists()


@pytest.mark.django_db
def test_health_check_now_says_which_were_not_checked(admin_client):
    off = DeploymentFactory(enabled=False)
    response = admin_client.post(
        _url(Deployment, "changelist"),
        {"action": "check_health_now", "_selected_action": [off.pk]},
        follow=True,
    )
    assert "1 not checked" in response.content.decode()
    assert not HealthCheck.objects.filter(deployment=off).exists()


@pytest.mark.django_db
def test_membership_admin_refuses_to_leave_a_team_without_a_lead(admin_client, team, lead):
    membership = Membership.objects.get(team=team, user=lead)
    response = admin_client.post(
        _url(Membership, "change", membership.pk), {"role": "viewer"}, follow=True
    )
    assert response.status_code == 200
    membership.refresh_from_db()
    assert membership.role == "lead"
    assert "owner or lead" in response.content.decode()


@pytest.mark.django_db
def test_membership_admin_adds_through_the_service(admin_client, admin_user, team):
    user = UserFactory(username="joiner")
    response = admin_client.post(
        _url(Membership, "add"), {"team": team.pk, "user": user.pk, "role": "member"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(team=team, user=user)
    assert AuditEvent.objects.filter(object_id=str(membership.pk), actor=admin_user).exists()


# --- Spend columns ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_keys_and_teams_show_spend_this_month_from_the_rollups(admin_client, team):
    keys = [api_key_issue(team=team, name=f"k{i}").api_key for i in range(3)]
    today = timezone.now().date()
    DailyUsageFactory(team=team, api_key=keys[0], day=today, cost_usd=Decimal("1.25"))
    DailyUsageFactory(team=team, api_key=keys[0], day=today.replace(day=1), cost_usd=Decimal("2"))
    if today.day > 1:
        last_month = today.replace(day=1) - timedelta(days=1)
        DailyUsageFactory(team=team, api_key=keys[1], day=last_month, cost_usd=Decimal("9"))
    with CaptureQueriesContext(connection) as captured:
        page = admin_client.get(_url(ApiKey, "changelist")).content.decode()
    assert "$3.25" in page
    assert "$9.00" not in page  # last month's
    rollup_reads = [q for q in captured if "billing_dailyusage" in q["sql"]]
    assert len(rollup_reads) == 1  # one query for the page, not one per key
    teams = admin_client.get(_url(type(team), "changelist")).content.decode()
    assert "$3.25" in teams


# --- The index --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_index_dashboard_numbers_match_the_data(admin_client, team):
    _record(team, cost="0.50")
    _record(team, cost="0.25", status=502)
    _record(team, cost="7", at=timezone.now() - timedelta(days=2))  # not today
    rollup_usage()
    _record(team, cost="0.125", status=429)  # ingested after the last rollup pass

    sick = DeploymentFactory(model_name="flaky")
    route = next(
        r
        for routes in routing_table_build().routes.values()
        for r in routes
        if r.deployment_id == sick.pk
    )
    for _ in range(settings.GATEWAY_BREAKER_CONSECUTIVE_FAILURES):
        health.report_sync(route, health.FAIL)
    DeploymentFactory(model_name="fine")

    near = Policy.objects.create(team=team, monthly_budget_usd=Decimal("10"))
    period = period_of(timezone.now().timestamp(), team.organization.timezone)
    SpendLedger.objects.create(level="team", scope_id=team.pk, period=period, spent_usd=Decimal(9))
    other = MembershipFactory(user=UserFactory(username="spare")).team
    Policy.objects.create(team=other, monthly_budget_usd=Decimal("10"))
    SpendLedger.objects.create(level="team", scope_id=other.pk, period=period, spent_usd=Decimal(1))

    response = admin_client.get(reverse("admin:index"))
    d = response.context["dashboard"]
    assert d["today"]["cost"] == "$0.875"
    assert (d["today"]["requests"], d["today"]["errors"]) == (3, 2)
    assert [r["label"].split(" @ ")[0] for r in d["unhealthy"]["rows"]] == ["flaky"]
    assert [b["percent"] for b in d["budgets"]["rows"]] == ["90%"]
    assert near.pk
    page = response.content.decode()
    assert 'id="spend-today"' in page and "$0.875" in page
    assert "flaky" in page and "90%" in page


@pytest.mark.django_db
def test_index_shows_an_auditor_the_numbers_and_a_bare_staff_user_nothing(client, team):
    from django.contrib.auth.models import Group

    from compliance.roles import AUDITOR, roles_create

    roles_create()
    user = UserFactory(username="an-auditor", is_staff=True)
    user.groups.add(Group.objects.get(name=AUDITOR))
    client.force_login(user)
    assert "today" in client.get(reverse("admin:index")).context["dashboard"]
    nobody = UserFactory(username="bare-staff", is_staff=True)
    client.force_login(nobody)
    assert client.get(reverse("admin:index")).context["dashboard"] == {}


# --- The front door ---------------------------------------------------------------------------


def test_root_redirects_to_the_portal(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/"


# --- Every list, every role -------------------------------------------------------------------


def test_every_list_has_columns_filters_and_search():
    from compliance.models import ComplianceReport

    # The report is a page of its own, not a list; groups have only a name to search.
    exempt = {ComplianceReport}
    for model, model_admin in admin.site._registry.items():
        if model in exempt:
            continue
        label = model._meta.label
        assert model_admin.search_fields, label
        assert model_admin.list_filter or label == "auth.Group", label
        assert model_admin.list_display != ("__str__",), label


@pytest.mark.django_db
def test_an_auditor_is_offered_no_action_that_writes(client, team):
    from django.contrib.auth.models import Group

    from compliance.roles import AUDITOR, roles_create

    roles_create()
    auditor = UserFactory(username="auditor", is_staff=True)
    auditor.groups.add(Group.objects.get(name=AUDITOR))
    key = api_key_issue(team=team, name="watched").api_key
    deployment = DeploymentFactory()
    client.force_login(auditor)
    keys = client.get(_url(ApiKey, "changelist")).content.decode()
    assert 'value="revoke_keys"' not in keys
    deployments = client.get(_url(Deployment, "changelist")).content.decode()
    assert 'value="disable_deployments"' not in deployments
    assert 'value="check_health_now"' not in deployments
    # A forged post is refused too: nothing changes.
    client.post(_url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]})
    client.post(
        _url(Deployment, "changelist"),
        {"action": "disable_deployments", "_selected_action": [deployment.pk]},
    )
    key.refresh_from_db()
    deployment.refresh_from_db()
    assert key.revoked_at is None and deployment.enabled


@pytest.mark.django_db
def test_deployment_list_shows_the_live_breaker_state(admin_client):
    sick = DeploymentFactory(model_name="sick")
    DeploymentFactory(model_name="quiet")
    route = next(
        r
        for routes in routing_table_build().routes.values()
        for r in routes
        if r.deployment_id == sick.pk
    )
    for _ in range(settings.GATEWAY_BREAKER_CONSECUTIVE_FAILURES):
        health.report_sync(route, health.FAIL)
    response = admin_client.get(_url(Deployment, "changelist"))
    shown = {d.model_name: d.live_health for d in response.context["cl"].result_list}
    assert shown["sick"].state == health.OPEN
    assert shown["quiet"] is None  # no traffic, no check: nothing to say
    cells = re.findall(
        r'<td class="[^"]*\bfield-health_state\b[^"]*"[^>]*>\s*([^<]*?)\s*</td>',
        response.content.decode(),
    )
    assert sorted(cells) == ["not checked", "open"]

"""Usage and spend queries, deployments' health, agreements, pagination, throttling and the
error shape of the management API."""

import datetime
from decimal import Decimal

import pytest
from django.test import Client

from routing import health
from routing.health_models import DeploymentHealth
from routing.selectors import routing_table_build

from .factories import (
    AgreementFactory,
    DailyUsageFactory,
    DeploymentFactory,
    MembershipFactory,
    ProjectFactory,
    TeamFactory,
    UserFactory,
)
from .helpers_api import client_for, error_of, make_cast

pytestmark = pytest.mark.django_db

D1, D2 = datetime.date(2026, 10, 1), datetime.date(2026, 10, 2)
PERIOD = {"start": "2026-10-01", "end": "2026-10-31"}


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def usage(cast):
    web = ProjectFactory(team=cast.team, slug="web")
    rows = [
        (cast.team, web, D1, "small", "chat", "1.50", 10),
        (cast.team, web, D2, "small", "chat", "0.50", 5),
        (cast.team, None, D2, "large", "search", "4.00", 2),
        (cast.other_team, None, D1, "small", "chat", "100", 99),
    ]
    for team, project, day, model, use_case, cost, requests in rows:
        DailyUsageFactory(
            team=team,
            project=project,
            day=day,
            model=model,
            use_case=use_case,
            cost_usd=Decimal(cost),
            requests=requests,
        )


def test_usage_totals_are_grouped_and_scoped(cast, usage):
    client = client_for(cast.users["viewer"])
    body = client.get("/api/v1/usage/", {**PERIOD, "group_by": "model"}).json()
    assert body["period"] == PERIOD and body["group_by"] == ["model"]
    # The other team's $100 is not in a viewer of "search"'s totals.
    assert body["totals"] == {"requests": 17, "cost_usd": "6.000000"}
    assert [(r["model"], r["requests"], r["cost_usd"]) for r in body["results"]] == [
        ("large", 2, "4.000000"),
        ("small", 15, "2.000000"),
    ]


@pytest.mark.parametrize(
    ("filters", "requests"),
    [
        ({"model": "small"}, 15),
        ({"project": "web"}, 15),
        ({"use_case": "search"}, 2),
        ({"team": "search"}, 17),
        ({"start": "2026-10-02", "end": "2026-10-02"}, 7),
        ({"model": "nothing"}, 0),
    ],
)
def test_usage_filters(cast, usage, filters, requests):
    client = client_for(cast.users["owner"])
    body = client.get("/api/v1/usage/", {**PERIOD, **filters}).json()
    assert body["totals"]["requests"] == requests


def test_usage_by_day_and_team_for_a_platform_admin(cast, usage):
    client = client_for(cast.users["platform"])
    body = client.get("/api/v1/usage/", {**PERIOD, "group_by": "team,day"}).json()
    rows = {(r["team"], r["day"]): r["requests"] for r in body["results"]}
    assert rows == {
        ("ads", "2026-10-01"): 99,
        ("search", "2026-10-01"): 10,
        ("search", "2026-10-02"): 7,
    }
    assert set(body["results"][0]) == {
        "team",
        "day",
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    }


@pytest.mark.parametrize(
    "query",
    [
        {"group_by": "colour"},
        {"start": "yesterday"},
        {"start": "2026-10-05", "end": "2026-10-01"},
        {"start": "2020-01-01", "end": "2026-01-01"},
    ],
)
def test_bad_usage_queries_are_400(cast, query):
    response = client_for(cast.users["owner"]).get("/api/v1/usage/", query)
    assert response.status_code == 400
    assert error_of(response)["fields"]


def test_deployment_health_reports_the_live_breaker_state(cast, settings):
    sick = DeploymentFactory(model_name="sick")
    well = DeploymentFactory(model_name="well")
    DeploymentHealth.objects.create(deployment=well, state="closed", last_error="")
    route = next(
        r
        for routes in routing_table_build().routes.values()
        for r in routes
        if r.deployment_id == sick.pk
    )
    for _ in range(settings.GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN):
        health.report_sync(route, health.FAIL)
    body = client_for(cast.users["member"]).get("/api/v1/deployments/health/").json()
    states = {r["model"]: (r["state"], r["usable"]) for r in body["results"]}
    assert states == {"sick": ("open", False), "well": ("closed", True)}


def test_agreements_are_validated_like_the_admin(cast):
    officer = client_for(cast.users["compliance"])
    from .factories import ProviderFactory

    ProviderFactory(name="acme")
    unsigned = officer.post("/api/v1/agreements/", {"provider": "acme", "status": "signed"})
    assert unsigned.status_code == 400 and "signed_on" in error_of(unsigned)["fields"]
    agreement = AgreementFactory()
    twice = officer.post(
        "/api/v1/agreements/",
        {"provider": agreement.provider.name, "status": "none"},
    )
    assert twice.status_code == 400
    assert officer.get(f"/api/v1/agreements/{agreement.pk + 1000}/").status_code == 404


def test_pages_have_a_limit_and_a_maximum(cast):
    for n in range(5):
        MembershipFactory(team=cast.team, user=UserFactory(username=f"extra{n}"), role="viewer")
    client = client_for(cast.users["owner"])
    first = client.get("/api/v1/teams/search/members/", {"limit": 3}).json()
    assert first["count"] == 9 and len(first["results"]) == 3
    assert "offset=3" in first["next"] and first["previous"] is None
    rest = client.get("/api/v1/teams/search/members/", {"limit": 3, "offset": 6}).json()
    assert len(rest["results"]) == 3 and rest["next"] is None
    seen = {m["username"] for m in first["results"]} | {m["username"] for m in rest["results"]}
    assert len(seen) == 6
    # A limit above the maximum is clamped to it.
    for n in range(3):
        TeamFactory(slug=f"t{n}")
    capped = client_for(cast.users["superuser"]).get("/api/v1/teams/", {"limit": 10_000}).json()
    assert capped["count"] == 5 and len(capped["results"]) == 5


def test_requests_over_the_rate_get_429_with_retry_after(cast, settings):
    settings.GATEWAY_API_RATE = "3/min"
    client = client_for(cast.users["viewer"])
    for _ in range(3):
        assert client.get("/api/v1/me/").status_code == 200
    limited = client.get("/api/v1/me/")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert error_of(limited)["code"] == "throttled"
    # Counted per token: another token of the same user, or another user, is not limited.
    assert client_for(cast.users["viewer"]).get("/api/v1/me/").status_code == 200
    assert client_for(cast.users["owner"]).get("/api/v1/me/").status_code == 200


def test_the_throttle_counts_in_the_shared_cache(cast, settings):
    from django.core.cache import cache

    settings.GATEWAY_API_RATE = "100/min"
    client = client_for(cast.users["viewer"])
    client.get("/api/v1/me/")
    from api.models import PersonalAccessToken

    token = PersonalAccessToken.objects.get(user=cast.users["viewer"])
    assert len(cache.get(f"api-throttle:token:{token.pk}")) == 1


def test_unknown_api_paths_and_methods_keep_the_error_shape(cast):
    client = client_for(cast.users["owner"])
    missing = client.get("/api/v1/nothing/")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = client.delete("/api/v1/teams/")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"
    bad_json = Client().post(
        "/api/v1/teams/search/keys/",
        "{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {client.token}",
    )
    assert bad_json.status_code == 400 and error_of(bad_json)["code"] == "parse_error"


def test_usage_without_grouping_is_one_total_row(cast, usage):
    body = client_for(cast.users["owner"]).get("/api/v1/usage/", PERIOD).json()
    assert body["count"] == 1
    assert body["results"] == [
        {
            "requests": 17,
            "errors": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": "6.000000",
        }
    ]
    empty = client_for(cast.users["owner"]).get("/api/v1/usage/", {"model": "none"}).json()
    assert empty["results"][0]["requests"] == 0 and empty["totals"]["cost_usd"] == "0.000000"

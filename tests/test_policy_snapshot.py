"""The policy table from the database, and `createapikey`'s own limits for a key.

The table: built in one bounded call from every Policy and ModelLimit row, served from memory,
dropped in this process when a row changes; the engine then reads it without a query.
"""

import asyncio
import time
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from policies.models import ModelLimit, Policy
from policies.snapshot import PolicyTableUnavailable, policy_table_build, policy_table_cache
from tenants.keys import hash_secret
from tenants.models import ApiKey
from tenants.selectors import api_key_principal_get
from tenants.services import api_key_issue

from .factories import ProjectFactory, TeamFactory


def _principal(secret: str):
    return api_key_principal_get(key_hash=hash_secret(secret))


@pytest.mark.django_db
def test_the_table_carries_every_level_and_the_engine_reads_it_without_a_query():
    team = TeamFactory(slug="search", allowed_models=["small", "large"])
    org = team.organization
    org.timezone = "America/New_York"
    org.save()
    project = ProjectFactory(team=team, slug="web")
    issued = api_key_issue(team=team, name="ci-bot", project=project)
    Policy.objects.create(organization=org, rpm=1000, allowed_providers=["p1", "p2"])
    Policy.objects.create(team=team, monthly_budget_usd=Decimal("50"), allowed_models=["small"])
    Policy.objects.create(project=project, tpm=500)
    Policy.objects.create(api_key=issued.api_key, max_tokens=64, blocked_terms=["falcon"])
    ModelLimit.objects.create(team=team, model="small", rpm=10)
    ModelLimit.objects.create(organization=org, model="small", tpm=99)
    principal = _principal(issued.secret)

    table = policy_table_build()
    with CaptureQueriesContext(connection) as queries:
        policy = table.effective(principal)
        scopes = policy.limit_scopes("small", None)

    assert len(queries) == 0
    assert policy.may_use("small") and not policy.may_use("large")
    assert policy.timezone == "America/New_York"
    assert [b.label for b in policy.budgets] == ["team 'search'"]
    assert policy.budgets[0].limit_micros == 50_000_000
    assert [s.label for s in scopes] == [
        "project 'web'",
        f"organization '{org.slug}'",
        "model 'small' in team 'search'",
        f"model 'small' in organization '{org.slug}'",
    ]
    assert policy.allows_route("p2", "") and not policy.allows_route("p3", "")
    assert table.effective(principal) is policy


@pytest.mark.django_db
def test_the_build_is_a_bounded_number_of_queries_however_many_policies():
    for index in range(20):
        team = TeamFactory(slug=f"t{index}")
        Policy.objects.create(team=team, rpm=index + 1)
        Policy.objects.create(project=ProjectFactory(team=team), rpm=1)
        ModelLimit.objects.create(team=team, model="small", rpm=1)

    with CaptureQueriesContext(connection) as queries:
        table = policy_table_build()

    assert len(table.team_rules) == 20 and len(table.project_rules) == 20
    assert len(queries) == 3


@pytest.mark.django_db(transaction=True)
async def test_a_saved_policy_is_served_at_once_in_this_process():
    team = await sync_to_async(TeamFactory)(slug="search", allowed_models=["*"])
    issued = await sync_to_async(api_key_issue)(team=team, name="k")
    principal = await sync_to_async(_principal)(issued.secret)
    assert (await policy_table_cache.get()).effective(principal).limit_scopes("m", None) == ()

    await sync_to_async(Policy.objects.create)(team=team, rpm=5)

    [scope] = (await policy_table_cache.get()).effective(principal).limit_scopes("m", None)
    assert (scope.label, scope.rpm) == ("team 'search'", 5)

    await sync_to_async(ModelLimit.objects.create)(team=team, model="m", tpm=7)
    scopes = (await policy_table_cache.get()).effective(principal).limit_scopes("m", None)
    assert [s.tpm for s in scopes] == [None, 7]


@pytest.mark.django_db(transaction=True)
async def test_with_no_table_a_failed_build_fails_fast_then_recovers():
    await sync_to_async(TeamFactory)(slug="search")

    def rename(sql):
        with connection.cursor() as cursor:
            cursor.execute(sql)

    await sync_to_async(rename)("ALTER TABLE policies_policy RENAME TO policies_policy_away")
    try:
        with pytest.raises(DatabaseError) as first:
            await policy_table_cache.get()
        assert not isinstance(first.value, PolicyTableUnavailable)
        with pytest.raises(PolicyTableUnavailable):
            await policy_table_cache.get()  # within the backoff: no new query
        assert policy_table_cache.status()["failed_builds"] == 1
    finally:
        await sync_to_async(rename)("ALTER TABLE policies_policy_away RENAME TO policies_policy")
    await asyncio.sleep(max(0.0, policy_table_cache._retry_at - time.monotonic()))
    assert (await policy_table_cache.get()).team_rules == {}


# --- createapikey's own limits ------------------------------------------------------------------


def _createapikey(*args: str) -> str:
    out = StringIO()
    call_command("createapikey", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


@pytest.mark.django_db
def test_createapikey_writes_the_keys_own_limits(team):
    Policy.objects.create(team=team, rpm=600, tpm=200_000, monthly_budget_usd=50)

    secret = _createapikey(
        "--team", team.slug, "--name", "ci-bot", "--rpm", "60", "--tpm", "1000", "--budget-usd", "5"
    )

    key = ApiKey.objects.get(key_hash=hash_secret(secret))
    policy = Policy.objects.get(api_key=key)
    assert (policy.rpm, policy.tpm, policy.monthly_budget_usd) == (60, 1000, Decimal(5))


@pytest.mark.django_db
def test_createapikey_without_limits_writes_no_policy(team):
    _createapikey("--team", team.slug)

    assert not Policy.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--rpm", "601"), "--rpm: may not exceed 600, set by team 'search'"),
        (("--tpm", "200001"), "--tpm: may not exceed 200000, set by team 'search'"),
        (("--budget-usd", "50.01"), "--budget-usd: may not exceed $50.00, set by team 'search'"),
        (("--rpm", "0"), "--rpm: Ensure this value is greater than or equal to 1."),
    ],
)
@pytest.mark.django_db
def test_createapikey_refuses_limits_above_the_teams_and_issues_nothing(team, args, message):
    Policy.objects.create(team=team, rpm=600, tpm=200_000, monthly_budget_usd=50)

    with pytest.raises(CommandError) as caught:
        _createapikey("--team", team.slug, *args)

    assert str(caught.value).startswith(message)
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_createapikey_is_held_to_the_organizations_limits_when_the_team_sets_none(team):
    Policy.objects.create(team=team, tpm=5)  # sets no rpm
    Policy.objects.create(organization=team.organization, rpm=100)

    with pytest.raises(CommandError, match="may not exceed 100, set by organization"):
        _createapikey("--team", team.slug, "--rpm", "101")
    assert _createapikey("--team", team.slug, "--rpm", "100")


@pytest.mark.parametrize("value", ["ten", "-1", "0.0000001", "NaN"])
@pytest.mark.django_db
def test_createapikey_refuses_a_budget_that_is_not_an_amount(team, value):
    with pytest.raises(CommandError, match="--budget-usd"):
        _createapikey("--team", team.slug, "--budget-usd", value)


@pytest.mark.django_db
def test_readyz_builds_and_reports_the_policy_table(client):
    Policy.objects.create(team=TeamFactory(slug="search"), rpm=1)

    response = client.get("/readyz")

    assert response.status_code == 200
    policies = response.json()["policies"]
    assert policies["age_s"] >= 0 and policies["failed_builds"] == 0
    assert policy_table_cache.current.team_rules

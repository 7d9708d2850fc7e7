"""Budget spend from usage records: periods in the organization's timezone, every level, the
seed callback admission uses, and the ledger the budget check keeps."""

from decimal import Decimal

import pytest

from billing.budgets import (
    budget_spend_micros,
    budget_stem,
    budget_targets,
    periods_to_check,
    seed_spend,
    spend_ledger_refresh,
    spend_micros_many,
    usd_to_micros,
)
from billing.models import SpendLedger
from policies.types import BudgetScope
from tenants.services import api_key_issue

from .factories import OrganizationFactory, ProjectFactory, TeamFactory
from .helpers_budgets import at, budget_policy, usage

NY = "America/New_York"


@pytest.fixture
def acme(db):
    return OrganizationFactory(slug="acme", name="Acme", timezone=NY)


@pytest.fixture
def search(acme):
    return TeamFactory(slug="search", organization=acme)


def test_a_month_is_the_organizations_calendar_month(search):
    # New York: November 2026 runs from 04:00 UTC on the 1st (EDT) to 05:00 UTC on Dec 1 (EST).
    for cost, when in [
        ("1", "2026-11-01T03:59:59"),  # Oct 31, 23:59:59 local
        ("2", "2026-11-01T04:00:00"),  # Nov 1, 00:00 local
        ("4", "2026-11-30T23:00:00"),
        ("8", "2026-12-01T04:59:59"),  # Nov 30, 23:59:59 local
        ("16", "2026-12-01T05:00:00"),  # Dec 1, 00:00 local
    ]:
        usage(cost=cost, when=at(when), team=search)

    assert budget_spend_micros("team", search.pk, "2026-10", NY) == 1_000_000
    assert budget_spend_micros("team", search.pk, "2026-11", NY) == 14_000_000
    assert budget_spend_micros("team", search.pk, "2026-12", NY) == 16_000_000
    # The same rows counted in UTC months would differ: the timezone is really applied.
    assert budget_spend_micros("team", search.pk, "2026-11", "UTC") == 7_000_000


def test_each_level_counts_its_own_traffic(acme, search):
    ads = TeamFactory(slug="ads", organization=acme)
    project = ProjectFactory(team=search, slug="ranker")
    key = api_key_issue(team=search, name="ci-bot", project=project).api_key
    other_key = api_key_issue(team=search, name="other").api_key
    when = at("2026-11-10T12:00")
    usage(cost="1.5", when=when, key=key)  # key, its project, the team, the organization
    usage(cost="2", when=when, key=other_key)  # no project
    usage(cost="4", when=when, team=ads)
    usage(cost="100", when=at("2026-10-10T12:00"), key=key)  # last month: nowhere

    assert budget_spend_micros("key", key.pk, "2026-11", NY) == 1_500_000
    assert budget_spend_micros("project", project.pk, "2026-11", NY) == 1_500_000
    assert budget_spend_micros("team", search.pk, "2026-11", NY) == 3_500_000
    assert budget_spend_micros("organization", acme.pk, "2026-11", NY) == 7_500_000
    scopes = [("key", key.pk), ("project", project.pk), ("team", search.pk), ("team", ads.pk)]
    assert spend_micros_many(scopes, "2026-11", NY) == [1_500_000, 1_500_000, 3_500_000, 4_000_000]
    assert spend_micros_many([], "2026-11", NY) == []


@pytest.mark.parametrize(
    ("usd", "micros"),
    [("0", 0), ("0.000001", 1), ("0.0000001", 1), ("0.0000015", 2), ("1.2345671", 1_234_568)],
)
def test_micros_round_up_so_a_counter_never_shows_less_than_was_spent(usd, micros):
    assert usd_to_micros(Decimal(usd)) == micros


def test_the_sum_is_exact_before_it_is_rounded(search):
    # A million requests at a fraction of a micro-dollar each must not round to zero each.
    when = at("2026-11-10T12:00")
    for _ in range(3):
        usage(cost="0.000000400000", when=when, team=search)
    assert budget_spend_micros("team", search.pk, "2026-11", NY) == 2  # 1.2 micros, rounded up


async def test_seed_callback_returns_each_scopes_spend(transactional_db, search):
    from asgiref.sync import sync_to_async

    key = await sync_to_async(lambda: api_key_issue(team=search, name="k").api_key)()
    await sync_to_async(usage)(cost="0.25", when=at("2026-11-02T12:00"), key=key)
    team_scope = BudgetScope("team", search.pk, "team 'search'", 50_000_000, True, False)
    key_scope = BudgetScope("key", key.pk, "key 'k'", 5_000_000, True, False)
    empty = BudgetScope("project", 999_999, "project 'x'", 1, False, False)

    seeded = await seed_spend([team_scope, key_scope, empty], "2026-11", NY)

    assert seeded == [250_000, 250_000, 0]  # in the scopes' order


def test_budget_stem_is_the_scopes_key():
    scope = BudgetScope("key", 42, "key 'ci-bot'", 1, True, False)
    assert budget_stem("key", 42) == scope.key


# --- The ledger ----------------------------------------------------------------------------------


def test_ledger_holds_every_budgeted_scope_and_only_those(acme, search):
    ads = TeamFactory(slug="ads", organization=acme)
    quiet = TeamFactory(slug="quiet", organization=acme)
    key = api_key_issue(team=search, name="ci-bot").api_key
    budget_policy(team=search, monthly_budget_usd=Decimal("50"))
    budget_policy(api_key=key, alert_thresholds=[80])  # thresholds without a budget: tracked
    budget_policy(team=ads, rpm=100)  # limits only: no ledger
    budget_policy(organization=acme, monthly_budget_usd=Decimal("1000"))
    budget_policy(team=quiet, monthly_budget_usd=Decimal("5"))  # budget, no usage: a zero row
    usage(cost="3", when=at("2026-11-10T12:00"), key=key)
    usage(cost="5", when=at("2026-11-11T12:00"), team=ads)

    entries = spend_ledger_refresh(now=at("2026-11-20T12:00").timestamp())

    rows = {(r.level, r.scope_id, r.period): r.spent_usd for r in SpendLedger.objects.all()}
    assert rows == {
        ("team", search.pk, "2026-11"): Decimal("3"),
        ("key", key.pk, "2026-11"): Decimal("3"),
        ("organization", acme.pk, "2026-11"): Decimal("8"),
        ("team", quiet.pk, "2026-11"): Decimal("0"),
    }
    assert len(entries) == 4
    labels = {t.label for t in budget_targets()}
    assert labels == {"team 'search'", "key 'ci-bot'", "organization 'acme'", "team 'quiet'"}


def test_ledger_is_recomputed_never_incremented(search):
    budget_policy(team=search, monthly_budget_usd=Decimal("50"))
    usage(cost="3", when=at("2026-11-10T12:00"), team=search)
    now = at("2026-11-20T12:00").timestamp()
    spend_ledger_refresh(now)
    spend_ledger_refresh(now)  # a repeated (or overlapping) run
    assert SpendLedger.objects.get(scope_id=search.pk).spent_usd == Decimal("3")

    usage(cost="0.5", when=at("2026-11-12T12:00"), team=search)
    spend_ledger_refresh(now)
    assert SpendLedger.objects.get(scope_id=search.pk).spent_usd == Decimal("3.5")
    assert SpendLedger.objects.count() == 1


def test_previous_month_is_refreshed_during_the_first_hour_of_the_next(search):
    budget_policy(team=search, monthly_budget_usd=Decimal("50"))
    usage(cost="2", when=at("2026-12-01T04:59:00"), team=search)  # Nov 30, 23:59 in New York
    usage(cost="1", when=at("2026-12-01T05:10:00"), team=search)  # December
    early = at("2026-12-01T05:30").timestamp()  # 00:30 local
    assert periods_to_check(early, NY) == ["2026-11", "2026-12"]
    assert periods_to_check(at("2026-12-01T06:30").timestamp(), NY) == ["2026-12"]

    spend_ledger_refresh(early)

    rows = dict(SpendLedger.objects.values_list("period", "spent_usd"))
    assert rows == {"2026-11": Decimal("2"), "2026-12": Decimal("1")}

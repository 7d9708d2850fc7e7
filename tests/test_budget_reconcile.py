"""Redis spend counters held to the ledger: created when missing (Redis flushed), raised when
behind (lost settles), never lowered (settles of requests not yet ingested). The scripts run on
both stores, Lua on Redis and the Python twin in process, against the same cases."""

import time
from decimal import Decimal

import pytest
from django.conf import settings

from billing.budget_check import budget_check
from billing.budget_state import READ, RECONCILE, read_counters
from billing.budgets import budget_stem
from billing.models import BudgetAlert, SpendLedger
from infra.state import get_state
from infra.state.memory import MemoryStateStore
from infra.state.redis import RedisStateStore
from policies.budget_keys import BUCKET_S, bucket_of, reservation_key, spent_key
from tenants.services import api_key_issue

from .factories import OrganizationFactory, TeamFactory
from .helpers_budgets import at, budget_policy, usage
from .helpers_proc import free_port

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


@pytest.fixture(params=["redis", "memory"])
def store(request):
    if request.param == "memory":
        return MemoryStateStore()
    return RedisStateStore(settings.REDIS_URL)  # flushed by conftest


def _get(store, key):
    return store.run_script_sync(READ, [key], [])[0]


def test_reconcile_creates_missing_raises_lower_and_keeps_higher(store):
    store.run_script_sync(RECONCILE, ["low", "high"], [5, 60, 100, 60])  # create both
    assert (_get(store, "low"), _get(store, "high")) == (5, 100)

    done = store.run_script_sync(RECONCILE, ["low", "high", "new"], [40, 60, 70, 60, 0, 60])

    assert done == [1, 0, 2]  # raised, unchanged, created
    assert [_get(store, k) for k in ("low", "high", "new")] == [40, 100, 0]


def test_a_created_counter_gets_the_ttl_and_a_raised_one_keeps_its_own(store):
    store.run_script_sync(RECONCILE, ["c"], [1, 1])  # created with a 1 s TTL
    store.run_script_sync(RECONCILE, ["c"], [9, 3600])  # raised: the TTL stays 1 s
    assert _get(store, "c") == 9
    deadline = time.monotonic() + 5
    while _get(store, "c") != -1:
        assert time.monotonic() < deadline, "the counter kept a TTL it should not have"
        time.sleep(0.05)


def test_read_sums_reservation_buckets_and_reports_a_missing_counter(store):
    assert store.run_script_sync(READ, ["spent", "r1", "r2"], []) == [-1, 0]
    store.run_script_sync(RECONCILE, ["spent", "r1", "r2"], [7, 60, 30, 60, 12, 60])
    assert store.run_script_sync(READ, ["spent", "r1", "r2", "r3"], []) == [7, 42]


# --- Through the budget check, on the real Redis -----------------------------------------------


@pytest.fixture
def budgeted(db):
    org = OrganizationFactory(slug="acme", timezone="Europe/Paris")
    team = TeamFactory(slug="search", organization=org)
    key = api_key_issue(team=team, name="ci-bot").api_key
    budget_policy(team=team, monthly_budget_usd=Decimal("50"))
    budget_policy(api_key=key, monthly_budget_usd=Decimal("5"))
    budget_policy(organization=org, alert_thresholds=[50])  # no budget: no counter
    return org, team, key


NOW = at("2026-11-20T12:00").timestamp()


def _counter(level, scope_id, period="2026-11"):
    value = get_state().sync_client.get(spent_key(budget_stem(level, scope_id), period))
    return None if value is None else int(value)


def test_counters_are_rebuilt_from_postgres_after_a_flush(budgeted):
    org, team, key = budgeted
    usage(cost="1.25", when=at("2026-11-05T10:00"), key=key)
    usage(cost="0.000000500000", when=at("2026-11-06T10:00"), key=key)
    usage(cost="2", when=at("2026-11-07T10:00"), team=team)
    get_state().sync_client.flushdb()

    report = budget_check(NOW)

    assert report.reconciled.created == 2 and report.reconciled.raised == 0
    assert _counter("key", key.pk) == 1_250_001  # rounded up
    assert _counter("team", team.pk) == 3_250_001
    assert _counter("organization", org.pk) is None  # thresholds only, no budget
    ttl = get_state().sync_client.ttl(spent_key(budget_stem("team", team.pk), "2026-11"))
    assert ttl > 35 * 86400  # the period's end plus the grace, counted from NOW


def test_reconciliation_raises_a_counter_that_missed_settles_and_never_lowers_one(budgeted):
    _, team, key = budgeted
    client = get_state().sync_client
    usage(cost="3", when=at("2026-11-05T10:00"), key=key)
    team_counter = spent_key(budget_stem("team", team.pk), "2026-11")
    key_counter = spent_key(budget_stem("key", key.pk), "2026-11")
    client.set(team_counter, 1_000_000, ex=86_400)  # behind: a settle was lost
    client.set(key_counter, 9_000_000, ex=86_400)  # ahead: settles not ingested yet

    report = budget_check(NOW)

    assert report.reconciled.raised == 1 and report.reconciled.created == 0
    assert int(client.get(team_counter)) == 3_000_000
    assert int(client.get(key_counter)) == 9_000_000
    assert 0 < client.ttl(team_counter) <= 86_400  # raised in place: its TTL is unchanged


def test_read_counters_sees_live_reservation_buckets_only(budgeted, settings):
    _, team, _ = budgeted
    settings.GATEWAY_BUDGET_RESERVATION_TTL_S = 2 * BUCKET_S  # live: this bucket and two before
    client, stem, now = get_state().sync_client, budget_stem("team", team.pk), time.time()
    bucket = bucket_of(now)
    client.set(spent_key(stem, "2026-11"), 4_000_000)
    client.set(reservation_key(stem, "2026-11", bucket), 300)
    client.set(reservation_key(stem, "2026-11", bucket - 2), 20)  # within the TTL
    client.set(reservation_key(stem, "2026-11", bucket - 3), 1)  # lapsed: past the TTL

    counters = read_counters(stem, "2026-11", now)

    assert counters.spent_micros == 4_000_000
    assert counters.reserved_micros == 320
    assert read_counters(budget_stem("team", 0), "2026-11", now).spent_micros is None


@pytest.fixture
def redis_down(settings):
    """The state store pointed at a port nothing listens on: a real refused connection."""
    get_state.cache_clear()
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    yield
    get_state.cache_clear()


def test_check_refreshes_the_ledger_and_records_alerts_while_redis_is_down(budgeted, redis_down):
    _, _, key = budgeted
    key.policy.alert_thresholds = [80]
    key.policy.save()
    usage(cost="4.5", when=at("2026-11-05T10:00"), key=key)  # 90% of the key's $5

    report = budget_check(NOW)

    assert report.reconciled is None
    assert SpendLedger.objects.get(level="key").spent_usd == Decimal("4.5")
    alert = BudgetAlert.objects.get()
    assert (alert.label, alert.threshold) == ("key 'ci-bot'", 80)
    # Nowhere to send it (no emails, no webhook): recorded, nothing queued.
    assert (alert.email_status, alert.webhook_status) == ("none", "none")
    assert report.alerts == []

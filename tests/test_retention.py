"""Retention (billing/retention.py): exactly the expired rows go, in batches, never a day the
rollup has not seen, and never the budget ledger."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.checks import Error
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import DailyUsage, SpendLedger, UsageContent, UsageRecord
from billing.retention import purge, usage_cutoff
from billing.rollups import PURGED, rollup_usage, watermark
from gateway.checks import check_retention

from .helpers_rollups import at, record

pytestmark = pytest.mark.django_db

NOW = at("2026-11-20T15:30")
# 62 days before NOW is 2026-09-19T15:30; usage goes in whole days: before that day's midnight.
CUTOFF = at("2026-09-19T00:00")
US = timedelta(microseconds=1)


@pytest.fixture(autouse=True)
def _retention(settings):
    settings.GATEWAY_USAGE_RETENTION_DAYS = 62
    settings.GATEWAY_CONTENT_RETENTION_DAYS = 30
    settings.GATEWAY_ROLLUP_RETENTION_DAYS = 0
    settings.GATEWAY_RETENTION_BATCH = 5000
    settings.GATEWAY_ROLLUP_OVERLAP_S = 300


def _usage(when, **fields):
    """A row ingested when it happened (long since rolled up, once the rollup has run)."""
    return record(created_at=when, ingested_at=when, **fields)


def _content(when):
    return UsageContent.objects.create(
        request_id=f"content-{when.timestamp()}", created_at=when, mode="hashed"
    )


def _request_ids():
    return set(UsageRecord.objects.values_list("request_id", flat=True))


def test_usage_rows_before_the_cutoff_day_go_and_nothing_else():
    gone = [_usage(CUTOFF - US), _usage(CUTOFF - timedelta(days=200))]
    kept = [_usage(CUTOFF), _usage(CUTOFF + timedelta(hours=15)), _usage(NOW - timedelta(days=1))]
    rollup_usage(now=NOW)
    rollups = DailyUsage.objects.count()

    deleted = purge(now=NOW)

    assert deleted == {"usage_records": 2, "usage_content": 0, "daily_usage": 0}
    assert _request_ids() == {row.request_id for row in kept}
    assert {r.request_id for r in gone}.isdisjoint(_request_ids())
    assert DailyUsage.objects.count() == rollups  # rollups are kept (0 = forever)
    assert watermark(PURGED) == CUTOFF
    assert purge(now=NOW)["usage_records"] == 0  # a second run has nothing left to do


def test_nothing_rolled_up_nothing_purged():
    _usage(CUTOFF - timedelta(days=10))
    old_content = _content(NOW - timedelta(days=31))

    deleted = purge(now=NOW)

    assert deleted["usage_records"] == 0 and UsageRecord.objects.count() == 1
    # Content has its own retention, whatever the rollup did.
    assert deleted["usage_content"] == 1
    assert not UsageContent.objects.filter(pk=old_content.pk).exists()


def test_days_with_rows_the_rollup_has_not_seen_are_kept():
    old = _usage(CUTOFF - timedelta(days=40))
    rollup_usage(now=NOW)
    # Late arrivals for two expired days, after the rollup's last pass.
    late = record(created_at=CUTOFF - timedelta(days=20, hours=3), ingested_at=NOW)
    same_day = _usage(CUTOFF - timedelta(days=20, hours=5))  # rolled up, but its day is not
    newer = _usage(CUTOFF - timedelta(days=5))

    assert usage_cutoff(NOW) == at("2026-08-29T00:00")  # the late row's day
    assert purge(now=NOW)["usage_records"] == 1
    assert _request_ids() == {late.request_id, same_day.request_id, newer.request_id}
    assert not UsageRecord.objects.filter(pk=old.pk).exists()

    rollup_usage(now=NOW + timedelta(minutes=10))  # the late row is rolled up now
    assert purge(now=NOW + timedelta(minutes=10))["usage_records"] == 3
    assert UsageRecord.objects.count() == 0


def test_content_and_usage_retention_are_separate():
    usage = _usage(NOW - timedelta(days=40))
    content = [_content(NOW - timedelta(days=30) - US), _content(NOW - timedelta(days=30))]
    rollup_usage(now=NOW)

    deleted = purge(now=NOW)

    assert deleted == {"usage_records": 0, "usage_content": 1, "daily_usage": 0}
    assert list(UsageRecord.objects.values_list("pk", flat=True)) == [usage.pk]
    assert list(UsageContent.objects.values_list("pk", flat=True)) == [content[1].pk]


def test_rollup_retention(settings):
    for days_ago in (0, 99, 100, 101, 400):
        DailyUsage.objects.create(day=(NOW - timedelta(days=days_ago)).date(), requests=1)

    assert purge(now=NOW)["daily_usage"] == 0  # 0: kept forever
    settings.GATEWAY_ROLLUP_RETENTION_DAYS = 100
    assert purge(now=NOW)["daily_usage"] == 2
    assert sorted(
        (NOW.date() - day).days for day in DailyUsage.objects.values_list("day", flat=True)
    ) == [0, 99, 100]


def test_deletes_go_in_batches_by_primary_key(settings):
    settings.GATEWAY_RETENTION_BATCH = 3
    for i in range(10):
        _usage(CUTOFF - timedelta(days=3, minutes=i))
        _content(NOW - timedelta(days=31, minutes=i))
    kept = _usage(CUTOFF)
    rollup_usage(now=NOW)

    with CaptureQueriesContext(connection) as queries:
        deleted = purge(now=NOW)

    assert deleted == {"usage_records": 10, "usage_content": 10, "daily_usage": 0}
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 8  # 3 + 3 + 3 + 1, for each table
    assert all(" IN (" in sql for sql in deletes)
    assert list(UsageRecord.objects.values_list("pk", flat=True)) == [kept.pk]
    assert UsageContent.objects.count() == 0


def test_budget_ledger_is_never_purged_and_usage_keeps_two_months(settings):
    SpendLedger.objects.create(level="team", scope_id=1, period="2024-01", spent_usd=Decimal(5))
    settings.GATEWAY_USAGE_RETENTION_DAYS = 7  # below two budget months: clamped
    recent = _usage(NOW - timedelta(days=40))
    rollup_usage(now=NOW)

    assert purge(now=NOW)["usage_records"] == 0

    assert UsageRecord.objects.filter(pk=recent.pk).exists()
    assert SpendLedger.objects.count() == 1
    errors = check_retention(None)
    assert [e.id for e in errors] == ["gateway.E030"] and isinstance(errors[0], Error)


def test_settings_are_checked(settings):
    assert check_retention(None) == []
    settings.GATEWAY_CONTENT_RETENTION_DAYS = 0
    settings.GATEWAY_ROLLUP_RETENTION_DAYS = -1
    settings.GATEWAY_RETENTION_BATCH = 0
    settings.GATEWAY_ROLLUP_INTERVAL_S = 0
    ids = [e.id for e in check_retention(None)]
    assert ids == ["gateway.E031", "gateway.E032", "gateway.E033", "gateway.E034"]

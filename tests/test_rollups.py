"""Daily rollups (billing/rollups.py): DailyUsage equals the sums of the detail rows, after
replays, late rows and re-ingested events; a replay writes nothing."""

import random
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.models import DailyUsage, RollupState, UsageRecord
from billing.rollup_aggregates import aggregate_python, aggregate_sql
from billing.rollups import PURGED, ROLLUP, advance, rollup_days, rollup_usage, watermark
from billing.services import usage_records_ingest

from .helpers_rollups import assert_rollups_match_detail, at, random_rows, record
from .helpers_usage import usage_event

pytestmark = pytest.mark.django_db


def _days_ago(n: int) -> date:
    return (timezone.now() - timedelta(days=n)).date()


def _snapshot() -> list[tuple]:
    return sorted(DailyUsage.objects.values_list("id", "day", "updated_at", "requests"))


def test_rollups_equal_the_sums_of_detail_rows_and_a_replay_writes_nothing():
    rng = random.Random(9)
    for n in (1, 2, 5):
        random_rows(rng, _days_ago(n), 120)

    written = rollup_usage()

    assert written == DailyUsage.objects.count() > 20
    assert_rollups_match_detail()
    before = _snapshot()
    assert rollup_usage() == 0  # a replay: same sums, nothing rewritten
    assert rollup_days([_days_ago(n) for n in (1, 2, 5)]) == 0  # forced: the same
    assert _snapshot() == before
    assert watermark(ROLLUP) is not None


def test_late_rows_for_an_old_day_correct_that_day_only():
    rng = random.Random(1)
    random_rows(rng, _days_ago(3), 60)
    random_rows(rng, _days_ago(1), 60)
    rollup_usage()
    recent = sorted(DailyUsage.objects.filter(day=_days_ago(1)).values_list("id", "updated_at"))

    random_rows(rng, _days_ago(3), 25)  # a replayed spool: old requests, ingested now
    written = rollup_usage()

    assert written == DailyUsage.objects.filter(day=_days_ago(3)).count()
    assert_rollups_match_detail()
    # The other day was not rewritten.
    assert sorted(DailyUsage.objects.filter(day=_days_ago(1)).values_list("id", "updated_at")) == (
        recent
    )


def test_reingested_events_change_nothing():
    now = timezone.now().timestamp()
    events = [
        usage_event(
            created_at=now - 86_400 * 2 - i,
            team_id=1,
            team_slug="search",
            api_key_id=7,
            latency_ms=float(i),
            status_code=200 if i % 4 else 429,
            error_type="" if i % 4 else "rate_limit_exceeded",
            cost_usd=Decimal("0.000022200000") * (i + 1),
        )
        for i in range(40)
    ]
    usage_records_ingest(events=events)
    rollup_usage()
    before = _snapshot()

    usage_records_ingest(events=events)  # the whole batch again (a crash before the ack)
    assert UsageRecord.objects.count() == 40
    assert rollup_usage() == 0
    rollup_days([_days_ago(2)])

    assert _snapshot() == before
    assert_rollups_match_detail()
    row = DailyUsage.objects.get()
    assert (row.requests, row.errors, row.errors_by_type) == (40, 10, {"rate_limit_exceeded": 10})
    assert row.cost_usd == Decimal("0.000022200000") * sum(range(1, 41))


def test_rows_committed_within_the_overlap_are_picked_up(settings):
    """ingested_at is set before the insert commits: a row can appear behind the watermark."""
    settings.GATEWAY_ROLLUP_OVERLAP_S = 300
    mark = timezone.now()
    rollup_usage(now=mark)
    day = _days_ago(2)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    record(created_at=noon, ingested_at=mark - timedelta(seconds=60), team_id=1)
    # Ingested before watermark - overlap: a pass does not look that far back...
    record(created_at=noon - timedelta(days=1), ingested_at=mark - timedelta(seconds=400))

    assert rollup_usage() == 1
    assert list(DailyUsage.objects.values_list("day", "team_id", "requests")) == [(day, 1, 1)]
    # ...but a forced recompute of its day does.
    assert rollup_days([day - timedelta(days=1)]) == 1
    assert_rollups_match_detail()


def test_sql_and_python_aggregation_agree():
    """Postgres sums in SQL; the embedded SQLite default sums in Python: the same numbers."""
    day = _days_ago(1)
    random_rows(random.Random(5), day, 300)

    in_sql, in_python = aggregate_sql(day), aggregate_python(day)

    assert in_sql.keys() == in_python.keys() and len(in_sql) > 20
    for key, numbers in in_sql.items():
        assert in_python[key] == numbers, key  # the percentiles too: the same float steps


def test_a_day_without_detail_loses_its_stale_rollups():
    day = _days_ago(4)
    rows = random_rows(random.Random(2), day, 30)
    rollup_usage()
    UsageRecord.objects.filter(pk__in=[r.pk for r in rows if r.team_id == 1]).delete()

    rollup_days([day])

    assert set(DailyUsage.objects.values_list("team_id", flat=True)) == {2}
    assert_rollups_match_detail()


def test_late_rows_of_a_purged_day_leave_its_rollup_alone():
    old = _days_ago(100)
    random_rows(random.Random(3), old, 20, ingested_at=timezone.now() - timedelta(days=99))
    rollup_usage()
    before = _snapshot()
    UsageRecord.objects.all().delete()  # what retention does, up to the purge watermark
    advance(PURGED, datetime(old.year, old.month, old.day, tzinfo=UTC) + timedelta(days=1))

    record(created_at=at(f"{old.isoformat()}T08:00"), team_id=1)  # arrives after the purge

    assert rollup_usage() == 0
    assert _snapshot() == before


def test_rollupusage_command_rebuilds_from_a_day(capsys):
    rng = random.Random(4)
    random_rows(rng, _days_ago(6), 30)
    random_rows(rng, _days_ago(2), 30)
    DailyUsage.objects.create(day=_days_ago(3), team_id=9, requests=5)  # nothing behind it

    call_command("rollupusage", "--since", _days_ago(3).isoformat())

    assert set(DailyUsage.objects.values_list("day", flat=True)) == {_days_ago(2)}
    call_command("rollupusage")
    assert_rollups_match_detail()
    assert "daily usage rows written" in capsys.readouterr().out
    assert RollupState.objects.get(name=ROLLUP).watermark is not None


@pytest.mark.django_db(transaction=True)
def test_overlapping_passes_never_duplicate_rows():
    """Two workers on the same day: the second waits for the first, then finds nothing to do."""
    day = _days_ago(1)
    random_rows(random.Random(6), day, 200)
    barrier = threading.Barrier(4)
    results, failures = [], []

    def one_pass():
        try:
            barrier.wait()
            results.append(rollup_days([day]))
        except Exception as exc:  # reported below, with the thread's own error
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_pass) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(results)[:3] == [0, 0, 0] and max(results) == DailyUsage.objects.count()
    assert_rollups_match_detail()

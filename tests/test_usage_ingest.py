"""Usage ingestion from the Redis stream: at least once delivery, counted exactly once."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import override_settings

from billing.ingest import GROUP, ensure_group, ingest_usage_stream
from billing.models import UsageRecord
from billing.services import usage_records_ingest
from billing.tasks import ingest_usage
from infra.usage_event import UsageEvent, decode
from tenants.models import ApiKey
from tenants.services import api_key_issue

from .helpers_usage import redis, usage_event, xadd

STREAM = settings.GATEWAY_USAGE_STREAM


@pytest.fixture
def api_key(team) -> ApiKey:
    return api_key_issue(team=team, name="ingest").api_key


def _pending() -> int:
    return redis().xpending(STREAM, GROUP)["pending"]


def _stream_is_drained() -> bool:
    return redis().xlen(STREAM) == 0 and _pending() == 0


def _crashed_consumer_reads(count: int) -> list[UsageEvent]:
    """A consumer reads a batch through the group and dies before acknowledging it."""
    ensure_group(redis())
    response = redis().xreadgroup(GROUP, "crashed", {STREAM: ">"}, count=count)
    return [decode(fields[b"e"]) for _, fields in response[0][1]]


def test_streamed_events_are_stored_once_and_removed_from_stream(api_key):
    events = [usage_event(api_key) for _ in range(5)]
    for event in events:
        xadd(event)
    assert ingest_usage_stream(consumer="c1") == 5
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        e.request_id for e in events
    }
    assert _stream_is_drained()
    # Nothing left to do: a second run stores nothing more.
    assert ingest_usage_stream(consumer="c1") == 0
    assert UsageRecord.objects.count() == 5


def test_stored_row_carries_the_event_fields(api_key):
    event = usage_event(api_key, stream=True, ttft_ms=12.5, cost_usd="0.000123456789")
    xadd(event)
    ingest_usage_stream(consumer="c1")
    row = UsageRecord.objects.get(request_id=event.request_id)
    assert row.api_key_id == api_key.pk
    assert row.team_id == api_key.team_id
    assert row.team_slug == api_key.team.slug
    assert row.key_prefix == api_key.prefix
    assert row.created_at == datetime.fromtimestamp(event.created_at, tz=UTC)
    assert row.cost_usd == Decimal("0.000123456789")
    assert (row.input_tokens, row.output_tokens) == (12, 34)
    assert row.stream is True
    assert row.ttft_ms == 12.5


def test_same_event_delivered_twice_is_one_row(api_key):
    event = usage_event(api_key)
    xadd(event)
    xadd(event)
    ingest_usage_stream(consumer="c1")
    assert UsageRecord.objects.filter(request_id=event.request_id).count() == 1
    assert _stream_is_drained()


@override_settings(GATEWAY_USAGE_BATCH_SIZE=2)
def test_stream_longer_than_a_batch_is_drained_in_one_run(api_key):
    for _ in range(7):
        xadd(usage_event(api_key))
    assert ingest_usage_stream(consumer="c1") == 7
    assert UsageRecord.objects.count() == 7
    assert _stream_is_drained()


def test_events_of_a_live_consumer_are_not_taken_before_the_idle_time(api_key):
    for _ in range(3):
        xadd(usage_event(api_key))
    _crashed_consumer_reads(3)
    # 60 s by default: a consumer that is merely slow keeps its batch.
    assert ingest_usage_stream(consumer="c2") == 0
    assert _pending() == 3
    assert not UsageRecord.objects.exists()


@override_settings(GATEWAY_USAGE_CLAIM_IDLE_MS=0)
def test_events_read_by_crashed_consumer_are_claimed_and_stored_once(api_key):
    events = [usage_event(api_key) for _ in range(4)]
    for event in events:
        xadd(event)
    assert len(_crashed_consumer_reads(4)) == 4
    assert _pending() == 4
    assert ingest_usage_stream(consumer="c2") == 4
    assert UsageRecord.objects.count() == 4
    assert _stream_is_drained()


@override_settings(GATEWAY_USAGE_CLAIM_IDLE_MS=0)
def test_replay_of_committed_but_unacked_batch_adds_no_duplicates(api_key):
    events = [usage_event(api_key) for _ in range(4)]
    for event in events:
        xadd(event)
    read = _crashed_consumer_reads(4)
    # The crashed consumer got as far as committing the rows, not as far as acknowledging.
    usage_records_ingest(events=read)
    assert UsageRecord.objects.count() == 4
    # A fresh event arrived meanwhile; it is stored alongside the replayed batch.
    fresh = usage_event(api_key)
    xadd(fresh)
    ingest_usage_stream(consumer="c2")
    assert UsageRecord.objects.count() == 5
    assert UsageRecord.objects.filter(request_id=fresh.request_id).exists()
    assert _stream_is_drained()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json at all",
        b"[1, 2, 3]",
        b'"a string"',
        b'{"request_id": "only-an-id"}',
        b'{"request_id": "bad-time", "created_at": "yesterday", "endpoint": "x", "status_code": 1}',
        b'{"request_id": "neg", "created_at": 1, "endpoint": "x", "status_code": 200, '
        b'"input_tokens": -5}',
        b'{"request_id": "no-status", "created_at": 1, "endpoint": "x", "status_code": null}',
        b'{"request_id": "bad-cost", "created_at": 1, "endpoint": "x", "status_code": 200, '
        b'"cost_usd": "cheap"}',
    ],
)
def test_malformed_event_is_dropped_without_blocking_the_others(api_key, payload):
    good_before, good_after = usage_event(api_key), usage_event(api_key)
    xadd(good_before)
    xadd(payload)
    xadd(good_after)
    ingest_usage_stream(consumer="c1")
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {
        good_before.request_id,
        good_after.request_id,
    }
    # Dropped, not parked: a malformed event would otherwise be replayed forever.
    assert _stream_is_drained()


def test_entry_without_event_field_is_dropped(api_key):
    good = usage_event(api_key)
    redis().xadd(STREAM, {"other": b"x"})
    xadd(good)
    ingest_usage_stream(consumer="c1")
    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == [good.request_id]
    assert _stream_is_drained()


def test_ingestion_records_when_the_key_was_last_used(api_key):
    newest = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    for ts in (newest.timestamp() - 60, newest.timestamp(), newest.timestamp() - 120):
        xadd(usage_event(api_key, created_at=ts))
    ingest_usage_stream(consumer="c1")
    api_key.refresh_from_db()
    assert api_key.last_used_at == newest


def test_ingest_task_drains_the_stream_when_called_in_process(api_key):
    for _ in range(3):
        xadd(usage_event(api_key))
    assert ingest_usage() == 3
    assert UsageRecord.objects.count() == 3
    assert _stream_is_drained()

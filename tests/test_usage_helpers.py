"""The helpers that let tests say "exactly once" (tests/helpers_usage.py): they must see what a
row count cannot, such as one request's event appended twice and stored once."""

import pytest
from django.conf import settings

from billing.ingest import GROUP, ensure_group, ingest_usage_stream
from billing.models import UsageRecord

from .helpers_usage import assert_usage_stream_settled, redis, usage_event, usage_stream_state, xadd

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


def test_drained_stream_with_the_expected_events_is_settled(db):
    for _ in range(3):
        xadd(usage_event())
    ingest_usage_stream(consumer="tests")
    assert UsageRecord.objects.count() == 3
    assert_usage_stream_settled(events=3)


def test_nothing_appended_is_settled_with_zero_events():
    assert usage_stream_state().added in (0, None)
    assert_usage_stream_settled(events=0)


def test_an_event_appended_twice_is_caught_although_it_is_stored_once(db):
    if int(redis().info("server")["redis_version"].split(".")[0]) < 7:
        pytest.skip("Redis < 7 does not count appended entries")
    event = usage_event()
    xadd(event)
    xadd(event)  # e.g. a settle path that ran twice for one request
    ingest_usage_stream(consumer="tests")
    assert UsageRecord.objects.count() == 1  # idempotent ingestion hides it from a row count
    with pytest.raises(AssertionError, match="2 usage events appended, expected 1"):
        assert_usage_stream_settled(events=1)


def test_events_not_yet_ingested_are_not_settled(db):
    xadd(usage_event())
    with pytest.raises(AssertionError, match="not drained"):
        assert_usage_stream_settled(events=1)


def test_events_read_but_not_acknowledged_are_not_settled(db):
    xadd(usage_event())
    client = redis()
    ensure_group(client)
    client.xreadgroup(GROUP, "crashed", {settings.GATEWAY_USAGE_STREAM: ">"})
    assert usage_stream_state().pending == 1
    with pytest.raises(AssertionError, match="not drained"):
        assert_usage_stream_settled(events=1)

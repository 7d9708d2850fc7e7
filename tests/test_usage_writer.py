"""The embedded writer's failure paths: nothing is dropped without a word, and one bad event does
not take its batch down with it. (A database that is away: tests/e2e/test_dependency_outages.py,
where the writer spools the batch and the replay stores it.)"""

import logging
import time
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import DailyUsage, UsageRecord
from billing.writer import UsageWriter
from infra import usage_event

from .helpers_usage import usage_event as make_event

# The writer thread has its own connection: it sees, and writes, only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def writer():
    writer = UsageWriter(retry_delays_s=())
    yield writer
    writer.stop()


def test_an_event_the_database_refuses_is_logged_and_the_rest_of_its_batch_stored(writer, caplog):
    good = [make_event(), make_event()]
    # Too large for the column: the database refuses this row, whatever happens around it.
    bad = make_event(cost_usd=Decimal("1e20"))
    with caplog.at_level(logging.ERROR, logger="billing.writer"):
        for event in (good[0], bad, good[1]):
            writer.submit(usage_event.encode(event))
        writer.flush()

    stored = set(UsageRecord.objects.values_list("request_id", flat=True))
    assert stored == {good[0].request_id, good[1].request_id}
    assert any(bad.request_id in record.getMessage() for record in caplog.records)


def test_an_unreadable_event_is_logged_and_the_thread_keeps_writing(writer, caplog):
    event = make_event()
    with caplog.at_level(logging.ERROR, logger="billing.writer"):
        writer.submit(b"{not json")
        writer.flush()
        writer.submit(usage_event.encode(event))
        writer.flush()

    assert list(UsageRecord.objects.values_list("request_id", flat=True)) == [event.request_id]
    assert any("unreadable" in record.getMessage() for record in caplog.records)


def test_the_embedded_writer_rolls_usage_up_without_a_beat(settings):
    # `make run` has no Celery beat: the writer thread runs the rollup pass on its schedule.
    settings.GATEWAY_ROLLUP_INTERVAL_S = 0.2
    writer = UsageWriter(retry_delays_s=(), first_maintenance_s=0.0)
    try:
        events = [make_event(latency_ms=10.0), make_event(latency_ms=30.0)]
        for event in events:
            writer.submit(usage_event.encode(event))
        writer.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            total = DailyUsage.objects.aggregate(n=Sum("requests"))["n"]
            if total == len(events):
                break
            time.sleep(0.1)
        assert DailyUsage.objects.aggregate(n=Sum("requests"))["n"] == len(events)
    finally:
        writer.stop()

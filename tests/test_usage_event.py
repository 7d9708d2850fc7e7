"""The usage event schema (infra/usage_event.py): one definition for producer, consumers and
tests, strict about fields, and never the cause of a row the database refuses."""

from decimal import Decimal

import pytest
from django.db import models

from billing.models import UsageRecord
from billing.services import usage_records_ingest
from infra import usage_event
from infra.usage_event import INT_LIMITS, STR_LIMITS, UsageEvent

from .helpers_usage import usage_event as make_event


def test_string_limits_match_the_usage_record_columns():
    for name, limit in STR_LIMITS.items():
        assert UsageRecord._meta.get_field(name).max_length == limit, name


def test_every_event_field_is_a_usage_record_column():
    columns = {f.attname for f in UsageRecord._meta.concrete_fields}
    # `content` goes to its own table (billing.UsageContent), never into the usage row.
    assert set(UsageEvent.__struct_fields__) - {"content"} <= columns
    assert "content" not in columns


def test_counter_limits_fit_their_columns():
    small = models.PositiveSmallIntegerField
    for name, limit in INT_LIMITS.items():
        field = UsageRecord._meta.get_field(name)
        assert limit == (32_767 if isinstance(field, small) else 2_147_483_647), name


def test_an_unknown_field_is_an_error():
    with pytest.raises(TypeError):
        make_event(not_a_field=1)


def test_a_missing_field_is_an_error_when_decoding():
    raw = usage_event.encode(make_event())
    broken = raw.replace(b'"endpoint":"chat.completions",', b"")
    with pytest.raises(usage_event.ValidationError, match="endpoint"):
        usage_event.decode(broken)


def test_unknown_fields_from_a_newer_producer_are_tolerated_only_when_asked():
    event = make_event()
    newer = usage_event.encode(event)[:-1] + b',"added_later":1}'
    with pytest.raises(usage_event.ValidationError):
        usage_event.decode(newer)
    assert usage_event.decode(newer, tolerate_unknown=True).request_id == event.request_id


def test_round_trip_keeps_the_cost_exact():
    event = make_event(cost_usd=Decimal("0.000000000001"))
    assert usage_event.decode(usage_event.encode(event)).cost_usd == Decimal("0.000000000001")


@pytest.mark.django_db
def test_overlong_values_are_truncated_and_the_row_inserts():
    event = make_event(
        requested_model="m" * 201,
        error_type="e" * 65,
        provider_name="p" * 150,
        region="r" * 80,
        input_tokens=-5,
        output_tokens=10**12,
        attempts=100_000,
    )
    assert len(event.requested_model) == 200
    assert len(event.error_type) == 64
    usage_records_ingest(events=[usage_event.decode(usage_event.encode(event))])
    row = UsageRecord.objects.get(request_id=event.request_id)
    assert row.requested_model == "m" * 200
    assert row.error_type == "e" * 64
    assert row.input_tokens == 0
    assert row.output_tokens == 2_147_483_647
    assert row.attempts == 32_767

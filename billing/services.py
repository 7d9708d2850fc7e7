"""Writes for billing: turning usage events into rows, idempotently."""

from datetime import UTC, datetime

from django.db import transaction

from infra.usage_event import UsageEvent
from tenants.services import api_keys_mark_used

from .models import UsageRecord

_FIELDS = {f.attname for f in UsageRecord._meta.concrete_fields} - {"id"}


def _record(event: UsageEvent) -> UsageRecord:
    data = {name: getattr(event, name) for name in event.__struct_fields__ if name in _FIELDS}
    data["created_at"] = datetime.fromtimestamp(event.created_at, tz=UTC)
    return UsageRecord(**data)


def usage_records_ingest(*, events: list[UsageEvent]) -> int:
    """Insert the events' rows; rows whose request id is already stored are skipped.

    That makes a replay after a crash (events committed, not yet acknowledged) harmless.
    Returns the number of events handed in, not of new rows: databases differ on whether
    ignored conflicts are counted.
    """
    if not events:
        return 0
    records = [_record(e) for e in events]
    last_used: dict[int, datetime] = {}
    for record in records:
        if record.api_key_id is not None:
            seen = last_used.get(record.api_key_id)
            if seen is None or record.created_at > seen:
                last_used[record.api_key_id] = record.created_at
    with transaction.atomic():
        UsageRecord.objects.bulk_create(records, ignore_conflicts=True, batch_size=500)
        api_keys_mark_used(last_used=last_used)
    return len(records)

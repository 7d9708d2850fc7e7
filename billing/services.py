"""Writes for billing: turning usage events into rows, idempotently."""

from datetime import UTC, datetime

from django.db import transaction

from infra.usage_event import UsageEvent
from tenants.services import api_keys_mark_used

from .models import UsageContent, UsageRecord

_FIELDS = {f.attname for f in UsageRecord._meta.concrete_fields} - {"id"}


def _record(event: UsageEvent) -> UsageRecord:
    data = {name: getattr(event, name) for name in event.__struct_fields__ if name in _FIELDS}
    data["created_at"] = datetime.fromtimestamp(event.created_at, tz=UTC)
    return UsageRecord(**data)


def _content(event: UsageEvent, created_at: datetime) -> UsageContent | None:
    """The content the team's privacy mode kept (already hashed or scrubbed by the web
    process), or None: `metadata` mode, or nothing safe to store."""
    c = event.content
    if c is None:
        return None
    return UsageContent(
        request_id=event.request_id,
        created_at=created_at,
        team_id=event.team_id,
        mode=c.mode[:8],
        prompt_hmac=c.prompt_hmac[:64],
        response_hmac=c.response_hmac[:64],
        hmac_key_id=c.hmac_key_id[:16],
        prompt=c.prompt,
        response=c.response,
        redactions=c.redactions,
    )


def usage_records_ingest(*, events: list[UsageEvent]) -> int:
    """Insert the events' rows; rows whose request id is already stored are skipped.

    That makes a replay after a crash (events committed, not yet acknowledged) harmless.
    Content kept by the team's privacy mode (event.content) goes into UsageContent in the
    same transaction, skipped the same way.
    Returns the number of events handed in, not of new rows: databases differ on whether
    ignored conflicts are counted.
    """
    if not events:
        return 0
    records = [_record(e) for e in events]
    contents = [
        found
        for event, record in zip(events, records, strict=True)
        if (found := _content(event, record.created_at)) is not None
    ]
    last_used: dict[int, datetime] = {}
    for record in records:
        if record.api_key_id is not None:
            seen = last_used.get(record.api_key_id)
            if seen is None or record.created_at > seen:
                last_used[record.api_key_id] = record.created_at
    with transaction.atomic():
        UsageRecord.objects.bulk_create(records, ignore_conflicts=True, batch_size=500)
        if contents:
            # Idempotent like the rows: a replayed event's content is already there.
            UsageContent.objects.bulk_create(contents, ignore_conflicts=True, batch_size=100)
        api_keys_mark_used(last_used=last_used)
    return len(records)

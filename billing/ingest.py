"""Production usage ingestion: Redis stream -> Postgres, at least once, counted exactly once.

Web processes XADD one event per request (infra/state/redis.py). This consumer, run by the
Celery task billing.tasks.ingest_usage, reads them through a consumer group:

1. claim events another consumer read but never acknowledged for GATEWAY_USAGE_CLAIM_IDLE_MS
   (it crashed), then read new ones;
2. insert the batch in one transaction; rows whose request id exists are skipped;
3. acknowledge and delete the batch only after the commit.

A crash between 2 and 3 replays the batch, and step 2 makes the replay a no-op.
"""

import logging

import redis
from django.conf import settings
from django.db import DataError, IntegrityError

from infra import usage_event
from infra.state import get_state
from infra.usage_event import UsageEvent

from .services import usage_records_ingest

log = logging.getLogger(__name__)
GROUP = "usage-ingest"
# What one bad event raises on its way to a row: conversion errors, or the database refusing a
# value. Connection errors are not in here: the batch stays pending and is retried.
_BAD_EVENT = (KeyError, TypeError, ValueError, ArithmeticError, DataError, IntegrityError)


def _client() -> redis.Redis:
    return get_state().sync_client


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(settings.GATEWAY_USAGE_STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _decode(entries: list) -> tuple[list[bytes], list[UsageEvent]]:
    ids, events = [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        if not fields:  # deleted while pending; nothing to store
            continue
        try:
            # Extra fields (a newer web process during a rolling upgrade) are tolerated; a
            # missing or mistyped field is not.
            events.append(usage_event.decode(fields[b"e"], tolerate_unknown=True))
        except (KeyError, usage_event.DecodeError, usage_event.ValidationError) as exc:
            # A malformed event would be replayed forever; log its id and why, and let it go.
            log.error("dropping malformed usage event %s: %s", entry_id, exc)
    return ids, events


def _store(events: list[UsageEvent]) -> None:
    """Store the batch; if one event spoils it, store the others one by one and drop that one."""
    try:
        usage_records_ingest(events=events)  # commits
    except _BAD_EVENT:
        if len(events) == 1:
            log.exception("dropping malformed usage event %s", events[0].request_id)
            return
        for event in events:
            _store([event])


def store_and_ack(client: redis.Redis, entries: list) -> int:
    ids, events = _decode(entries)
    if not ids:
        return 0
    _store(events)
    stream = settings.GATEWAY_USAGE_STREAM
    pipe = client.pipeline(transaction=True)
    pipe.xack(stream, GROUP, *ids)
    pipe.xdel(stream, *ids)
    pipe.execute()
    return len(events)


def ingest_usage_stream(*, consumer: str, max_batches: int = 100) -> int:
    """Drain the stream (bounded by max_batches per call). Returns events processed."""
    client = _client()
    ensure_group(client)
    stream = settings.GATEWAY_USAGE_STREAM
    batch = settings.GATEWAY_USAGE_BATCH_SIZE
    processed = 0
    start = "0-0"
    for _ in range(max_batches):
        start, claimed, _deleted = client.xautoclaim(
            stream, GROUP, consumer, settings.GATEWAY_USAGE_CLAIM_IDLE_MS, start, count=batch
        )
        processed += store_and_ack(client, claimed)
        if start in (b"0-0", "0-0"):
            break
    for _ in range(max_batches):
        response = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=batch)
        entries = response[0][1] if response else []
        if not entries:
            break
        processed += store_and_ack(client, entries)
    return processed

"""Usage events as web processes emit them (gateway/proxy/context.py RequestContext.event)."""

import itertools
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from redis.exceptions import ResponseError

from infra import usage_event as schema
from infra.state import get_state
from infra.usage_event import UsageEvent

_ids = itertools.count()


def usage_event(api_key=None, **overrides) -> UsageEvent:
    """An event as a web process builds it; an unknown field in `overrides` is a TypeError."""
    fields = {
        "request_id": f"req-{next(_ids)}-{time.time_ns()}",
        "created_at": time.time(),
        "organization_id": api_key.team.organization_id if api_key else None,
        "team_id": api_key.team_id if api_key else None,
        "team_slug": api_key.team.slug if api_key else "",
        "project_id": None,
        "api_key_id": api_key.pk if api_key else None,
        "key_prefix": api_key.prefix if api_key else "",
        "user_id": None,
        "endpoint": "chat.completions",
        "requested_model": "small",
        "deployment_id": None,
        "provider_id": None,
        "provider_name": "mock",
        "upstream_model": "mock-small-1",
        "region": "local",
        "stream": False,
        "input_tokens": 12,
        "output_tokens": 34,
        "cached_tokens": 0,
        "usage_estimated": False,
        "latency_ms": 1.5,
        "upstream_ms": 1.0,
        "ttft_ms": None,
        "attempts": 1,
        "status_code": 200,
        "error_type": "",
        "cost_usd": Decimal("0.000022200000"),
    }
    fields.update(overrides)
    return UsageEvent(**fields)


def redis():
    return get_state().sync_client


def xadd(event: UsageEvent | bytes) -> bytes:
    """Append to the usage stream exactly as RedisStateStore.append_usage does."""
    payload = event if isinstance(event, bytes) else schema.encode(event)
    return redis().xadd(settings.GATEWAY_USAGE_STREAM, {"e": payload})


# --- Exactly once: the stream's side of the count -------------------------------------------------


@dataclass(frozen=True)
class StreamState:
    length: int  # events waiting in the stream (XLEN)
    pending: int  # events read by a consumer but not acknowledged (XPENDING)
    # Events ever appended since the stream was created (in a test: since it started, as Redis is
    # flushed before each). None before Redis 7.0, which does not count them.
    added: int | None


def usage_stream_state() -> StreamState:
    from billing.ingest import GROUP

    client, stream = redis(), settings.GATEWAY_USAGE_STREAM
    try:
        info = client.xinfo_stream(stream)
    except ResponseError:  # no stream yet: nothing was ever appended
        return StreamState(length=0, pending=0, added=0)
    try:
        pending = client.xpending(stream, GROUP)["pending"]
    except ResponseError:  # no consumer group yet: nothing was ever read
        pending = 0
    return StreamState(length=info["length"], pending=pending, added=info.get("entries-added"))


def assert_usage_stream_settled(*, events: int) -> None:
    """Everything appended has been ingested and acknowledged, and exactly `events` events were
    ever appended: a request whose usage was appended twice shows here, even though ingestion
    would quietly store it once (the request id is unique)."""
    state = usage_stream_state()
    assert (state.length, state.pending) == (0, 0), f"usage stream not drained: {state}"
    if state.added is not None:
        assert state.added == events, f"{state.added} usage events appended, expected {events}"

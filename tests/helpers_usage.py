"""Usage events as web processes emit them (gateway/proxy/context.py RequestContext.event)."""

import itertools
import time
from decimal import Decimal

from django.conf import settings

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

"""Builders for admission tests, and a worker that admits from its own OS process.

`python -m tests.helpers_admission rpm|budget <limit> <calls> <start_at>` admits `calls` requests
at once, from the moment `start_at` (epoch seconds), against one scope of `limit` requests per
minute, or one budget of `limit` dollars at $1 a request, and prints how many were admitted: two
of these side by side share one Redis.
"""

import asyncio
import os
import socket
import sys
import time

import pytest
from django.conf import settings

from infra.state.memory import MemoryStateStore, set_usage_sink
from infra.state.redis import RedisStateStore
from policies.admission import AdmissionRequest, Admitter
from policies.types import BudgetScope, LimitScope


@pytest.fixture(params=["redis", "memory"])
def store(request):
    """Each test runs twice: on the test Redis (Lua) and in process (the Python twin)."""
    if request.param == "memory":
        return MemoryStateStore()
    store = RedisStateStore(settings.REDIS_URL)
    store.sync_client.flushdb()
    return store


@pytest.fixture
def events():
    """Usage events the in-process store hands to its sink (the embedded writer's place)."""
    received: list[bytes] = []
    set_usage_sink(received.append)
    yield received
    set_usage_sink(None)


@pytest.fixture
def admitter(store, events):
    return Admitter(store)


@pytest.fixture
def closed_redis_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    finally:
        sock.close()


def limit(key: str = "gw:rl:team:1", label: str = "team 'search'", rpm=None, tpm=None):
    return LimitScope(key=key, label=label, rpm=rpm, tpm=tpm)


def budget(
    limit_usd: float,
    *,
    level: str = "team",
    scope_id: int = 1,
    label: str = "team 'search'",
    hard: bool = True,
    clamp: bool = False,
) -> BudgetScope:
    return BudgetScope(
        level=level,
        scope_id=scope_id,
        label=label,
        limit_micros=round(limit_usd * 1_000_000),
        hard=hard,
        clamp=clamp,
    )


def request(
    limits=(),
    budgets=(),
    *,
    tokens: int = 10,
    prompt_micros: int = 0,
    output_tokens: int = 0,
    output_price: int = 0,
    timezone: str = "UTC",
) -> AdmissionRequest:
    return AdmissionRequest(
        request_id="r",
        limits=tuple(limits),
        tokens=tokens,
        budgets=tuple(budgets),
        timezone=timezone,
        prompt_micros=prompt_micros,
        output_tokens=output_tokens,
        output_price=output_price,
    )


class Seeder:
    """A seed callback answering fixed spend per scope (0 unless told), counting its calls."""

    def __init__(self, spend: dict[int, int] | None = None, fail: bool = False) -> None:
        self.spend = spend or {}
        self.fail = fail
        self.calls: list[tuple[tuple[BudgetScope, ...], str, str]] = []

    async def __call__(self, scopes, period, timezone):
        self.calls.append((scopes, period, timezone))
        if self.fail:
            raise ConnectionError("postgres is down")
        return [self.spend.get(scope.scope_id, 0) for scope in scopes]


def _main(kind: str, limit_value: int, calls: int, start_at: float) -> None:
    import django

    django.setup()
    from infra.state import get_state
    from policies.admission import AdmissionRefused

    admitter = Admitter(get_state())
    if kind == "rpm":
        req = request([limit(key="gw:rl:procs", rpm=limit_value)])
    else:
        req = request(budgets=[budget(limit_value, scope_id=99)], prompt_micros=1_000_000)

    async def one() -> bool:
        try:
            await admitter.admit(req, seed=Seeder())
        except AdmissionRefused:
            return False
        return True

    async def run() -> int:
        results = await asyncio.gather(*(one() for _ in range(calls)))
        return sum(results)

    time.sleep(max(0.0, start_at - time.time()))
    print(asyncio.run(run()), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    _main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))

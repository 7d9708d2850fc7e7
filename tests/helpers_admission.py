"""Builders for admission tests, and a worker that admits from its own OS process.

`python -m tests.helpers_admission <rpm> <calls> <start_at>` admits `calls` requests against one
scope of `rpm` requests per minute, all at once from the moment `start_at` (epoch seconds), and
prints how many were admitted: two of these side by side share one Redis.
"""

import asyncio
import os
import sys
import time

from policies.admission import AdmissionRequest
from policies.types import BudgetScope, LimitScope


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


def _main(rpm: int, calls: int, start_at: float) -> None:
    import django

    django.setup()
    from infra.state import get_state
    from policies.admission import AdmissionRefused, Admitter

    admitter = Admitter(get_state())
    req = request([limit(key="gw:rl:procs", rpm=rpm)])

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
    _main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))

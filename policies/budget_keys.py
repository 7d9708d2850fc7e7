"""Where budget counters live in the state store. One place, read by admission (the hot path),
billing (rebuild, reconciliation, alerts) and the admin.

For a BudgetScope with key stem `gw:bud:team:3` and period `2026-11`:

- `gw:bud:team:3:2026-11:spent`: settled spend, integer micro-dollars, TTL to the period's end
  plus a grace (policies/periods.py). Missing means unknown: rebuilt from Postgres.
- `gw:bud:team:3:2026-11:r:<bucket>`: reservations of requests in flight, made in minute
  `bucket` (epoch seconds // 60). A settle takes back its own bucket's amount. A process that
  dies mid-request never does; its reservation lapses with the bucket's TTL instead
  (GATEWAY_BUDGET_RESERVATION_TTL_S), so no budget is held forever and nothing needs a sweeper.
"""

import math

BUCKET_S = 60


def spent_key(stem: str, period: str) -> str:
    return f"{stem}:{period}:spent"


def reservation_key(stem: str, period: str, bucket: int) -> str:
    return f"{stem}:{period}:r:{bucket}"


def bucket_of(ts: float) -> int:
    return int(ts // BUCKET_S)


def live_buckets(ts: float, reservation_ttl_s: float) -> range:
    """The buckets that may still hold live reservations at `ts`, oldest first."""
    now = bucket_of(ts)
    return range(now - math.ceil(reservation_ttl_s / BUCKET_S), now + 1)


def reservation_bucket_ttl_s(reservation_ttl_s: float) -> int:
    """A bucket's TTL: its last reservation (made at the bucket's end) must live the full TTL."""
    return math.ceil(reservation_ttl_s) + BUCKET_S

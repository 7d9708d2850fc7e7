"""Where budget counters live in the state store. One place, read by admission (the hot path),
billing (rebuild, reconciliation, alerts) and the admin.

For a BudgetScope with key stem `gw:bud:team:3` and period `2026-11`:

- `gw:bud:team:3:2026-11:spent`: settled spend, integer micro-dollars, TTL to the period's end
  plus a grace (policies/periods.py). Missing means unknown: rebuilt from Postgres.
- `gw:bud:team:3:2026-11:r:<bucket>`: reservations of requests in flight, made in the
  five-minute `bucket` (epoch seconds // BUCKET_S). A settle takes back its own bucket's
  amount. A process that dies mid-request never does; its reservation stops counting once its
  bucket falls out of the live range (GATEWAY_BUDGET_RESERVATION_TTL_S, plus at most one
  bucket) and then expires, so no budget is held forever and nothing needs a sweeper.

Why five minutes: admission passes every live bucket key of every budget to its script, and
each key costs the client CPU to send (about a microsecond, on every request). With the default
15-minute TTL that is 4 buckets per budget instead of 16 minute buckets; the price is a lapse
that is up to five minutes later, for requests whose process died.
"""

import math

BUCKET_S = 300


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

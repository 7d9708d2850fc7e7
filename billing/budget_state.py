"""Budget counters in the state store, seen from billing: reconciliation and a read for the admin.

Key names are policies/budget_keys.py's, the same ones admission writes.

Reconciliation holds each spend counter to the ledger (billing/budgets.py) in one direction:

- missing (Redis flushed or restarted, a period nobody spent in yet): SET to the ledger's value;
- lower than the ledger: raised to it. The counter missed settles: a request whose settle failed
  while Redis was down (its usage reached Postgres through the spool), or one settled while the
  counter was missing and seeded before its usage was stored;
- higher: left alone. Settles reach Redis before their usage events are ingested, so a counter
  ahead of the ledger is the normal state of requests in flight. Lowering it would hand out
  budget that is already spent.

All in one script per batch, atomic against admission's own script: a counter another process
seeds or settles meanwhile is never overwritten with a smaller value.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from infra.state import get_state
from infra.state.base import Script
from policies.budget_keys import live_buckets, reservation_key, spent_key
from policies.periods import COUNTER_GRACE, period_bounds

from .budgets import LedgerEntry, usd_to_micros

# Keys per script call: one call holds Redis for its whole run.
BATCH = 200

UNCHANGED, RAISED, CREATED = 0, 1, 2


def _reconcile_py(view, keys, args):
    done = []
    for i, key in enumerate(keys):
        want, ttl = int(args[2 * i]), int(args[2 * i + 1])
        current = view.get(key)
        if current is None:
            view.set(key, str(want).encode(), ttl)
            done.append(CREATED)
        elif int(current) < want:
            view.incrby(key, want - int(current))  # keeps the counter's TTL
            done.append(RAISED)
        else:
            done.append(UNCHANGED)
    return done


# KEYS: spend counters. ARGV: per key, the ledger's micro-dollars and the TTL for a new counter.
# Returns per key 0 (unchanged), 1 (raised) or 2 (created).
RECONCILE = Script(
    name="budget-reconcile",
    lua="""
local done = {}
for i, key in ipairs(KEYS) do
  local want = ARGV[2 * i - 1]
  local current = redis.call('GET', key)
  if not current then
    redis.call('SET', key, want, 'EX', ARGV[2 * i])
    done[i] = 2
  elseif tonumber(current) < tonumber(want) then
    redis.call('SET', key, want, 'KEEPTTL')
    done[i] = 1
  else
    done[i] = 0
  end
end
return done
""",
    py=_reconcile_py,
)


def _read_py(view, keys, args):
    spent = view.get(keys[0])
    reserved = sum(int(view.get(key) or 0) for key in keys[1:])
    return [-1 if spent is None else int(spent), reserved]


# KEYS: a spend counter, then reservation buckets. Returns [spent (-1: missing), reserved sum].
READ = Script(
    name="budget-read",
    lua="""
local spent = redis.call('GET', KEYS[1])
local reserved = 0
for i = 2, #KEYS do
  reserved = reserved + tonumber(redis.call('GET', KEYS[i]) or '0')
end
return {tonumber(spent or '-1'), reserved}
""",
    py=_read_py,
)


def counter_ttl_for(period: str, tz: str, now: float) -> int:
    """The TTL a period's spend counter gets when created now (policies/periods.py's rule)."""
    _, end = period_bounds(period, tz)
    return max(1, int(end.timestamp() - now + COUNTER_GRACE.total_seconds()))


@dataclass(frozen=True, slots=True)
class Reconciled:
    checked: int = 0
    raised: int = 0
    created: int = 0


def reconcile_counters(entries: Sequence[LedgerEntry], now: float | None = None) -> Reconciled:
    """Raise or create the spend counters of budgets (scopes with a limit) from the ledger.

    Raises StateUnavailable when Redis is down: nothing to reconcile against then, and admission
    rebuilds missing counters itself once it is back.
    """
    now = time.time() if now is None else now
    budgets = [e for e in entries if e.target.limit_usd is not None]
    raised = created = 0
    store = get_state()
    for start in range(0, len(budgets), BATCH):
        batch = budgets[start : start + BATCH]
        keys = [spent_key(e.target.stem, e.period) for e in batch]
        args: list[int] = []
        for e in batch:
            args += [usd_to_micros(e.spent_usd), counter_ttl_for(e.period, e.target.timezone, now)]
        for outcome in store.run_script_sync(RECONCILE, keys, args):
            raised += outcome == RAISED
            created += outcome == CREATED
    return Reconciled(checked=len(budgets), raised=raised, created=created)


@dataclass(frozen=True, slots=True)
class Counters:
    spent_micros: int | None  # None: no counter (rebuilt from Postgres on the next request)
    reserved_micros: int  # live reservations of requests in flight


def reservation_ttl_s() -> float:
    # Admission's setting; the default matches its own.
    return float(getattr(settings, "GATEWAY_BUDGET_RESERVATION_TTL_S", 900))


def read_counters(stem: str, period: str, now: float | None = None) -> Counters:
    """A budget's spend counter and the sum of its live reservation buckets, in one round trip.

    Raises StateUnavailable when Redis is down.
    """
    now = time.time() if now is None else now
    buckets = live_buckets(now, reservation_ttl_s())
    keys = [spent_key(stem, period)] + [reservation_key(stem, period, b) for b in buckets]
    spent, reserved = get_state().run_script_sync(READ, keys, [])
    return Counters(
        spent_micros=None if int(spent) < 0 else int(spent), reserved_micros=int(reserved)
    )

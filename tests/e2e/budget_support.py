"""Budgets and limits as end-to-end tests set and read them: policies in Postgres, counters in
Redis (policies/budget_keys.py), spend in the usage log."""

import math
import time
from decimal import Decimal

from infra.state import get_state
from policies import budget_keys
from policies.models import Policy
from policies.periods import period_of
from policies.snapshot import policy_table_cache
from tenants.models import Team

# The fake upstream's usage while these tests run: the answer always uses exactly the output
# tokens asked for, so a request's actual cost equals its reservation's output part.
OUTPUT_TOKENS = 1000
PROMPT_TOKENS = 10
# chat-fast's prices (tests/e2e/support.py): USD per 1M tokens, i.e. micro-dollars per token.
PRICE_IN, PRICE_OUT = Decimal("0.5"), Decimal("1.5")
ACTUAL_MICROS = math.ceil(PROMPT_TOKENS * PRICE_IN + OUTPUT_TOKENS * PRICE_OUT)  # 1505


def set_team_policy(team: Team, **fields) -> Policy:
    policy, _ = Policy.objects.update_or_create(team=team, defaults=fields)
    # The gateway under test runs in this process: serve the change now, not within the TTL.
    policy_table_cache.invalidate()
    return policy


def budget_counters(level: str, scope_id: int, tz: str = "UTC") -> tuple[int | None, int]:
    """(settled spend or None if the counter is missing, live reservations), micro-dollars."""
    client = get_state().sync_client
    stem = f"gw:bud:{level}:{scope_id}"
    period = period_of(time.time(), tz)
    spent = client.get(budget_keys.spent_key(stem, period))
    reserved = sum(
        int(client.get(key) or 0)
        for key in client.scan_iter(match=budget_keys.reservation_key(stem, period, 0)[:-1] + "*")
    )
    return (None if spent is None else int(spent)), reserved


def micros(records) -> int:
    """What settlement adds to the spend counter: each request's cost, rounded up to a micro."""
    return sum(math.ceil(r.cost_usd * 1_000_000) for r in records)

"""Retrying a failed upstream attempt: when, how long to wait, and how much retrying is allowed.

A retry sends the same request to the same deployment again, after a refused connection, a 5xx
or an overload; then the call falls back to the next candidate (calls.py). A timeout or a 429
goes straight to the next candidate: the attempt already spent its time, or the provider asked
us to wait. Two bounds keep retries from multiplying an outage:

- **Backoff with full jitter**: the n-th retry waits a random time in
  [0, min(GATEWAY_RETRY_BACKOFF_MAX_S, GATEWAY_RETRY_BACKOFF_BASE_S * 2**n)], never past the
  request's deadline. Random, so that the retries of many clients failing together do not
  arrive together again.
- **A retry budget** per process (the scheme of Finagle's and Linkerd's retry budgets): every
  request deposits GATEWAY_RETRY_BUDGET_RATIO of a token, every retry spends a whole one, and
  the balance is capped (100 retries). On top of that, GATEWAY_RETRY_MIN_PER_S retries a second
  are always allowed, so a quiet gateway can still retry. In steady traffic
  retries thus stay below about that ratio of requests however many fail: in a full outage the
  provider sees at most 1 + ratio times the traffic, not 1 + retries.

Per process, not shared: each process's share of traffic earns its own retries, which bounds
the total the same way without a Redis round trip on the failure path.
"""

import random
import time

from django.conf import settings

# The most retries a balance may hold: a burst of failures after a quiet spell may spend this
# much saved-up allowance, no more.
_MAX_BALANCE = 100.0


class RetryBudget:
    """Runs on one event loop (one per process): no lock needed, nothing here awaits."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._balance = 0.0
        self._second = 0  # the second whose floor retries are counted
        self._floor_used = 0

    def deposit(self) -> None:
        """A request arrived: it earns GATEWAY_RETRY_BUDGET_RATIO of a retry."""
        self._balance = min(_MAX_BALANCE, self._balance + settings.GATEWAY_RETRY_BUDGET_RATIO)

    def try_spend(self) -> bool:
        """Take one retry if the budget allows it."""
        if self._balance >= 1.0:
            self._balance -= 1.0
            return True
        second = int(self._clock())
        if second != self._second:
            self._second, self._floor_used = second, 0
        if self._floor_used < settings.GATEWAY_RETRY_MIN_PER_S:
            self._floor_used += 1
            return True
        return False

    def reset(self) -> None:
        self._balance, self._second, self._floor_used = 0.0, 0, 0


budget = RetryBudget()


def backoff_s(retry: int, rng: random.Random | None = None) -> float:
    """How long to wait before retry number `retry` (0 for the first): full jitter."""
    ceiling = min(
        settings.GATEWAY_RETRY_BACKOFF_MAX_S, settings.GATEWAY_RETRY_BACKOFF_BASE_S * 2**retry
    )
    return (rng or random).uniform(0.0, ceiling)  # jitter, not a secret

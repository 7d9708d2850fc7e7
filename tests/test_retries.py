"""The retry budget and backoff (gateway/proxy/retries.py): pure, with a controlled clock."""

import random

from gateway.proxy.retries import RetryBudget, backoff_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_outage_gets_at_most_the_ratio_of_retries_plus_the_floor(settings):
    settings.GATEWAY_RETRY_BUDGET_RATIO = 0.2
    settings.GATEWAY_RETRY_MIN_PER_S = 5
    clock = Clock()
    budget = RetryBudget(clock)
    retries = 0
    # 10 seconds at 100 requests a second, every one of them failing and asking for a retry.
    for _ in range(10):
        for _ in range(100):
            budget.deposit()
            retries += budget.try_spend()
        clock.now += 1.0
    # 20% of 1,000 requests, plus at most the 5-a-second floor.
    assert 200 <= retries <= 200 + 5 * 10
    assert retries < 1000


def test_a_quiet_gateway_may_still_retry_a_few_times_a_second(settings):
    settings.GATEWAY_RETRY_MIN_PER_S = 2
    clock = Clock()
    budget = RetryBudget(clock)
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert budget.try_spend() is True


def test_saved_up_allowance_is_capped(settings):
    settings.GATEWAY_RETRY_BUDGET_RATIO = 1.0
    settings.GATEWAY_RETRY_MIN_PER_S = 0
    budget = RetryBudget(Clock())
    for _ in range(10_000):
        budget.deposit()
    spent = 0
    while budget.try_spend():
        spent += 1
    assert spent == 100


def test_backoff_has_full_jitter_under_a_growing_ceiling(settings):
    settings.GATEWAY_RETRY_BACKOFF_BASE_S = 0.05
    settings.GATEWAY_RETRY_BACKOFF_MAX_S = 1.0
    rng = random.Random(7)
    first = [backoff_s(0, rng) for _ in range(500)]
    later = [backoff_s(10, rng) for _ in range(500)]
    assert all(0 <= w <= 0.05 for w in first)
    assert all(0 <= w <= 1.0 for w in later)
    assert max(later) > 0.9 and min(later) < 0.1  # spread over the whole range, not fixed

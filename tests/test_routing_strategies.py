"""The ordering of a group's deployments per strategy (routing/strategies.py): pure."""

import random
from collections import Counter
from decimal import Decimal

from routing.selectors import Route
from routing.strategies import order


def _route(pk: int, *, inp="1", out="1", weight=1, priority=0) -> Route:
    return Route(
        deployment_id=pk,
        model_name="m",
        upstream_model=f"u{pk}",
        mode="chat",
        provider_id=1,
        provider_name="p",
        provider_kind="mock",
        api_base="",
        input_cost_per_mtok=Decimal(inp),
        output_cost_per_mtok=Decimal(out),
        weight=weight,
        priority=priority,
    )


def _ids(routes) -> list[int]:
    return [r.deployment_id for r in routes]


def test_cheapest_weighs_prices_by_this_requests_tokens():
    cheap_in = _route(1, inp="0.1", out="10")  # cheap prompts, dear answers
    cheap_out = _route(2, inp="5", out="1")
    # A long prompt and a short answer: the cheap input price wins.
    assert _ids(
        order([cheap_out, cheap_in], "cheapest", prompt_tokens=10_000, output_tokens=10)
    ) == [
        1,
        2,
    ]
    # A short prompt and a long answer: the cheap output price wins.
    assert _ids(order([cheap_in, cheap_out], "cheapest", prompt_tokens=10, output_tokens=4000)) == [
        2,
        1,
    ]


def test_cheapest_without_tokens_orders_by_price_sum_then_id():
    routes = [_route(3, inp="1", out="1"), _route(2, inp="0.5", out="0.5"), _route(1)]
    assert _ids(order(routes, "cheapest")) == [2, 1, 3]


def test_priority_orders_by_priority_then_id():
    routes = [_route(1, priority=5), _route(2, priority=-1), _route(3, priority=5), _route(4)]
    assert _ids(order(routes, "priority")) == [2, 4, 1, 3]


def test_latency_puts_the_fastest_first_and_follows_changes():
    routes = [_route(1, inp="0.1"), _route(2, inp="1"), _route(3, inp="2")]
    latencies = {1: 300.0, 2: 120.0, 3: 80.0}
    assert _ids(order(routes, "latency", latencies=latencies)) == [3, 2, 1]
    # Deployment 3 slowed down: the order follows.
    assert _ids(order(routes, "latency", latencies={**latencies, 3: 900.0})) == [2, 1, 3]


def test_latency_without_any_measurement_is_cheapest():
    routes = [_route(1, inp="2"), _route(2, inp="1"), _route(3, inp="3")]
    assert _ids(order(routes, "latency", latencies=None)) == [2, 1, 3]
    # Unknown ones come first, cheapest first among them: a deployment without a measurement
    # gets one instead of never being tried.
    assert _ids(order(routes, "latency", latencies={3: 50.0})) == [2, 1, 3]


def test_weighted_first_choice_follows_the_weights_and_keeps_every_route():
    routes = [_route(1, weight=1), _route(2, weight=3), _route(3, weight=0)]
    rng = random.Random(8)
    firsts = Counter()
    for _ in range(8000):
        ordered = order(routes, "weighted", rng=rng)
        assert sorted(_ids(ordered)) == [1, 2, 3]  # all stay, as fallbacks
        assert ordered[-1].deployment_id == 3  # weight 0: only after the others
        firsts[ordered[0].deployment_id] += 1
    share = firsts[2] / 8000
    assert 0.72 < share < 0.78, firsts
    assert firsts[3] == 0


def test_weighted_with_every_weight_zero_still_orders_every_route():
    routes = [_route(2, weight=0), _route(1, weight=0)]
    assert _ids(order(routes, "weighted", rng=random.Random(1))) == [1, 2]


def test_unknown_strategy_and_single_routes_are_left_cheapest():
    routes = [_route(2, inp="2"), _route(1, inp="3")]
    assert _ids(order(routes, "nonsense")) == [2, 1]
    assert _ids(order(routes[:1], "weighted")) == [2]

from decimal import Decimal

from routing.providers import Usage
from routing.selectors import Route

_PER_MTOK = Decimal(1_000_000)


def cost_usd(route: Route, usage: Usage) -> Decimal:
    """Exact: prices are USD per 1M tokens with 6 decimals, so no rounding happens here."""
    return (
        usage.input_tokens * route.input_cost_per_mtok
        + usage.output_tokens * route.output_cost_per_mtok
    ) / _PER_MTOK

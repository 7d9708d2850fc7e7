"""Money as people read it: "$0.0123", "$1,234.56", never "0.000000000000".

Costs are stored as Decimals with 12 places (a request can cost a millionth of a dollar), so a
fixed number of places is either noise or zero. Below a dollar, three significant digits are
kept (at least two places, at most MAX_PLACES); from a dollar up, cents.
"""

from decimal import ROUND_HALF_UP, Decimal

MAX_PLACES = 8
_SIGNIFICANT = 3


def format_usd(amount: Decimal | int | float | str | None, *, empty: str = "—") -> str:
    if amount is None or amount == "":
        return empty
    value = Decimal(str(amount)) if not isinstance(amount, Decimal) else amount
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value == 0:
        return "$0.00"
    if value >= 1:
        return f"{sign}${value.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    # adjusted(): the exponent of the first significant digit (0.0123 -> -2).
    places = min(max(2, _SIGNIFICANT - 1 - value.adjusted()), MAX_PLACES)
    rounded = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    if rounded == 0:
        return f"{sign}<${Decimal(1).scaleb(-MAX_PLACES):f}"
    text = f"{rounded:f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{sign}${whole}.{fraction.ljust(2, '0')}"

"""Filters for the portal's numbers: money as money, shares as percentages."""

from datetime import timedelta
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from billing.analytics_report import usd as _usd

register = template.Library()
SMALLEST = Decimal("0.0001")


@register.filter
def usd(value) -> str:
    if value is None or value == "":
        return "—"
    value = Decimal(value)
    # One call to a small model costs a few millionths of a dollar: "$0.0000" would read as
    # free, so a positive amount below the last shown digit says so.
    if 0 < value < SMALLEST:
        return f"<{_usd(SMALLEST)}"
    # Dollars as dollars and cents; below one, the four decimals that show a small key's day.
    return f"${value:,.2f}" if abs(value) >= 1 else _usd(value)


@register.filter
def sub(value, other):
    return Decimal(value) - Decimal(other)


@register.filter
def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.0f}%"


@register.filter
def percent_number(share: float | None) -> str:
    return "0" if share is None else f"{share * 100:.0f}"


@register.filter
def percent_width(share: float | None) -> str:
    """A bar's width: the share, capped at a full bar."""
    return "0" if share is None else f"{min(share, 1.0) * 100:.1f}"


@register.filter
def ago(moment) -> str:
    """ "3 hours ago"; "just now" rather than "0 minutes ago"."""
    if moment is None:
        return "never"
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment).split(',')[0]} ago"

"""Filters for the portal's numbers: money as money, shares as percentages."""

from decimal import Decimal

from django import template

from billing.analytics_report import usd as _usd

register = template.Library()


@register.filter
def usd(value) -> str:
    if value is None or value == "":
        return "—"
    return _usd(Decimal(value))


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

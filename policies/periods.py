"""Budget periods: calendar months in the organization's timezone, named like "2026-11".

The period's name is part of every budget counter's key (policies/budget_keys.py), so a new
month starts on fresh counters: the rollover happens exactly once, in every process, with no
job to run and nothing to reset.
"""

import time
import zoneinfo
from datetime import datetime, timedelta
from functools import lru_cache


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # Validated on save (tenants.models.validate_timezone); a row written another way
        # counts in UTC rather than failing every request.
        return zoneinfo.ZoneInfo("UTC")


def period_of(ts: float, tz: str) -> str:
    """The period (month) that the instant `ts` (epoch seconds) falls in, in timezone `tz`."""
    local = datetime.fromtimestamp(ts, _zone(tz))
    return f"{local.year:04d}-{local.month:02d}"


def period_bounds(period: str, tz: str) -> tuple[datetime, datetime]:
    """The period's start (inclusive) and end (exclusive), as aware datetimes in `tz`."""
    year, month = (int(part) for part in period.split("-"))
    zone = _zone(tz)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start, end


def seconds_left(ts: float, tz: str) -> float:
    """Seconds from `ts` until the end of its period."""
    _, end = period_bounds(period_of(ts, tz), tz)
    return max(0.0, end.timestamp() - ts)


# Counters outlive their period by this much: late settles of the period's last requests, the
# admin's and the alerts' look at last month.
COUNTER_GRACE = timedelta(days=35)


def counter_ttl_s(ts: float | None = None, tz: str = "UTC") -> int:
    """The TTL of a period's counters, set when they are created."""
    ts = time.time() if ts is None else ts
    return int(seconds_left(ts, tz) + COUNTER_GRACE.total_seconds())

"""The timeout fields of a configuration's providers and deployments, read and checked.

Kept apart from the loader's walk through the file: it returns what it found and what is wrong
(field, message), and the loader reports the problems its own way.

`timeout_s`, the one timeout before there were four, is still read: it was the wait for any
single read (the response, then each chunk), which is now first_byte_timeout_s and
idle_timeout_s together. Given with either of those, which one meant what is a guess: an error.
"""

import math

from routing.models import (
    DEFAULT_ATTEMPT_TIMEOUT_S,
    DEFAULT_FIRST_BYTE_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    TIMEOUT_FIELDS,
)

MIN_TIMEOUT_S = 0.1  # the models' own minimum
LEGACY = "timeout_s"
PROVIDER_DEFAULTS: dict[str, float | None] = {
    "connect_timeout_s": None,  # GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S
    "first_byte_timeout_s": DEFAULT_FIRST_BYTE_TIMEOUT_S,
    "idle_timeout_s": DEFAULT_IDLE_TIMEOUT_S,
    "attempt_timeout_s": DEFAULT_ATTEMPT_TIMEOUT_S,
}
DEPLOYMENT_DEFAULTS: dict[str, float | None] = dict.fromkeys(TIMEOUT_FIELDS)  # the provider's


def _seconds(value) -> tuple[float | None, str | None]:
    if isinstance(value, bool):
        return None, f"not a number: {value!r}"
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None, f"not a number: {value!r}"
    if not math.isfinite(seconds) or seconds < MIN_TIMEOUT_S:
        return None, f"must be a finite number of seconds, at least {MIN_TIMEOUT_S}"
    return seconds, None


def read_timeouts(
    item: dict, defaults: dict[str, float | None], *, legacy: bool = False
) -> tuple[dict[str, float | None], list[tuple[str, str]]]:
    """The model values for `item`'s timeout fields (absent: the default), and its problems as
    (field, message). `legacy` also reads the deprecated `timeout_s` (providers only)."""
    values: dict[str, float | None] = {}
    problems: list[tuple[str, str]] = []
    for name, default in defaults.items():
        values[name] = default
        if item.get(name) is not None:
            values[name], problem = _seconds(item[name])
            if problem:
                problems.append((name, problem))
    if legacy and LEGACY in item:
        replacements = [n for n in ("first_byte_timeout_s", "idle_timeout_s") if n in item]
        if replacements:
            problems.append(
                (
                    LEGACY,
                    "deprecated; it means first_byte_timeout_s and idle_timeout_s together, "
                    f"so it cannot be given with {' or '.join(replacements)}",
                )
            )
        else:
            seconds, problem = _seconds(item[LEGACY])
            if problem:
                problems.append((LEGACY, problem))
            values["first_byte_timeout_s"] = values["idle_timeout_s"] = seconds
    return values, problems
